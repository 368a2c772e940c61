"""Shared fixtures of the Python tests (run by ctest: PYTHONPATH is the build tree's python folder)."""

import os
import pathlib

import pytest

import fusionflow as ff

SOURCE_DIR = pathlib.Path(os.environ.get("FUSIONFLOW_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
EXAMPLES = SOURCE_DIR / "examples" / "pipelines"


@pytest.fixture(scope="session")
def registry():
    return ff.registry()


@pytest.fixture(scope="session")
def phantom(registry):
    """The head phantom at 32^3 (CT, T1, PET and labels) as read-only fusionflow Volumes."""
    pipeline = ff.Pipeline("phantom")
    pipeline.add_node("phantom", "testdata.phantom", size=[32, 32, 32], spacing=[7.5, 7.5, 7.5])
    result = pipeline.run(outputs=["phantom.ct", "phantom.t1", "phantom.pet", "phantom.labels"], threads=2)
    return {name: result.outputs["phantom." + name] for name in ("ct", "t1", "pet", "labels")}
