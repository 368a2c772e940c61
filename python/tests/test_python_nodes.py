"""Node types whose run function is Python: declared like C++ nodes, run under the GIL, the graph still parallel."""

import os
import subprocess
import time

import nibabel
import numpy as np
import pytest

import fusionflow as ff
from conftest import EXAMPLES

FUSIONFLOW_EXE = os.environ.get("FUSIONFLOW_EXE", "fusionflow")


@pytest.fixture()
def private_registry():
    return ff.Registry()


def test_a_python_node_reads_and_writes_volumes_without_copies(private_registry):
    seen = {}

    def scale(ctx):
        volume = ctx.input("volume")
        seen["input"] = volume.data_pointer
        out = ff.Volume.empty(volume.shape, like=volume)
        np.multiply(volume.array, ctx.param("factor"), out=out.array)
        seen["output"] = out.data_pointer
        ctx.output("volume", out)

    private_registry.add_node(
        "py.scale", scale, description="multiplies by a factor",
        inputs=[ff.Input("volume", description="any volume")], outputs=[ff.Output("volume")],
        params=[ff.Param("factor", "float", 2.0, "the factor", min=0, max=10)])
    declared = private_registry.node_type("py.scale")
    assert declared["params"][0] == {"name": "factor", "kind": "float", "required": False, "default": 2.0,
                                     "min": 0.0, "max": 10.0, "description": "the factor"}
    assert declared["plugin"] == "python"
    source = ff.Volume(np.arange(24, dtype=np.float32).reshape((2, 3, 4)), spacing=(1, 2, 3), modality="PT")
    pipeline = ff.Pipeline()
    pipeline.add_node("pet", "python.input_volume")
    pipeline.add_node("scaled", "py.scale", factor=3).connect("pet.volume", "scaled.volume")
    result = pipeline.run(inputs={"pet": source}, outputs=["scaled.volume"], registry=private_registry)
    out = result.outputs["scaled.volume"]
    assert seen["input"] == source.data_pointer and seen["output"] == out.data_pointer
    np.testing.assert_array_equal(out.array, 3 * source.array)
    assert out.modality == "PT" and out.spacing == (1.0, 2.0, 3.0)
    assert result.record["nodes"][1]["params"] == {"factor": 3.0}
    # Parameters are checked by the same validator as C++ nodes'.
    pipeline.set_param("scaled", "factor", 11)
    with pytest.raises(ff.PipelineError) as raised:
        pipeline.validate(registry=private_registry)
    assert raised.value.problems[0].location == "/nodes/1/params/factor"
    assert "allowed range: [0, 10]" in raised.value.problems[0].hint


def test_declaration_mistakes_are_refused_when_registering(private_registry):
    with pytest.raises(ValueError, match="unknown payload type 'Volumes'"):
        private_registry.add_node("py.bad_port", lambda ctx: None, inputs=[ff.Input("x", "Volumes")])
    with pytest.raises(ValueError, match="unknown parameter kind 'number'"):
        private_registry.add_node("py.bad_param", lambda ctx: None, params=[ff.Param("x", "number", 1)])
    with pytest.raises(ValueError):
        private_registry.add_node("NotSnake", lambda ctx: None)
    with pytest.raises(ValueError, match="already registered"):
        private_registry.add_node("fuse.latent", lambda ctx: None)


def test_a_node_that_forgets_its_output_or_returns_the_wrong_type_fails_clearly(private_registry):
    private_registry.add_node("py.forgets", lambda ctx: None, outputs=[ff.Output("volume")])
    private_registry.add_node("py.wrong_type", lambda ctx: ctx.output("volume", np.zeros(3)),
                              outputs=[ff.Output("volume")])
    for node_type, message in (("py.forgets", "did not produce its output 'volume'"),
                               ("py.wrong_type", "output 'volume' of node 'n' takes a Volume, not ndarray")):
        pipeline = ff.Pipeline()
        pipeline.add_node("n", node_type).add_node("out", "python.output_volume").connect("n.volume", "out.volume")
        with pytest.raises(ff.RunError, match=message):
            pipeline.run(registry=private_registry)


def test_python_nodes_run_beside_the_rest_of_the_graph(private_registry, phantom):
    def wait(ctx):
        for _ in range(100):  # 1 s in steps; time.sleep lets other threads take the GIL
            time.sleep(0.01)
        ctx.output("volume", ctx.input("volume"))

    private_registry.add_node("py.wait", wait, inputs=[ff.Input("volume")], outputs=[ff.Output("volume")])
    pipeline = ff.Pipeline()
    pipeline.add_node("ct", "python.input_volume").add_node("mri", "python.input_volume")
    pipeline.add_node("wait", "py.wait").connect("ct.volume", "wait.volume")
    pipeline.add_node("reg", "register.rigid").connect("ct.volume", "reg.fixed").connect("mri.volume", "reg.moving")
    pipeline.add_node("out", "python.output_volume").connect("wait.volume", "out.volume")
    result = pipeline.run(inputs={"ct": phantom["ct"], "mri": phantom["t1"]}, threads=2, registry=private_registry)
    nodes = {node["id"]: node for node in result.record["nodes"]}
    wait_node, reg_node = nodes["wait"], nodes["reg"]
    assert wait_node["wall_seconds"] >= 1.0
    # register.rigid (C++) ran while the Python node was running: all of it
    # (on a fast machine it takes less than 0.2 s at 32^3) within the wait.
    overlap = min(wait_node["end_seconds"], reg_node["end_seconds"]) - max(wait_node["start_seconds"],
                                                                           reg_node["start_seconds"])
    assert overlap >= 0.9 * reg_node["wall_seconds"] > 0, (wait_node, reg_node)
    assert not wait_node["ran_alone"] and not reg_node["ran_alone"]


def test_a_python_node_in_the_default_pipeline(tmp_path, phantom, private_registry):
    for name, volume in (("ct", phantom["ct"]), ("t1", phantom["t1"]), ("pet", phantom["pet"])):
        ff.to_nibabel(volume).to_filename(str(tmp_path / f"{name}.nii.gz"))

    def hot_mask(ctx):
        """Voxels of the fused volume at or above a quantile."""
        fused = ctx.input("volume")
        level = np.quantile(fused.array, ctx.param("quantile"))
        mask = ff.Volume.empty(fused.shape, like=fused, modality="LABELS", units="")
        np.greater_equal(fused.array, level, out=mask.array, casting="unsafe")
        ctx.log(f"threshold {level:.4f}")
        ctx.output("mask", mask)

    private_registry.add_node("py.hot_mask", hot_mask, inputs=[ff.Input("volume")], outputs=[ff.Output("mask")],
                              params=[ff.Param("quantile", "float", 0.95, min=0, max=1)])
    variables = {"ct": str(tmp_path / "ct.nii.gz"), "mri": str(tmp_path / "t1.nii.gz"),
                 "pet": str(tmp_path / "pet.nii.gz")}
    pipeline = ff.Pipeline.load(EXAMPLES / "pet_ct_mri_fusion.json", variables=variables, registry=private_registry)
    pipeline.add_node("hot", "py.hot_mask", quantile=0.9).connect("fused.volume", "hot.volume")
    pipeline.add_node("write_hot", "io.write").connect("hot.mask", "write_hot.volume")
    pipeline.set_param_template("write_hot", "path", "${out}/hot_mask.nii.gz")
    result = pipeline.run(variables={**variables, "out": str(tmp_path / "py")}, threads=2,
                          outputs=["fused.volume", "hot.mask"], registry=private_registry)
    fused, mask = result.outputs["fused.volume"], result.outputs["hot.mask"]
    assert mask.array.mean() == pytest.approx(0.1, abs=0.02)
    written = nibabel.load(str(tmp_path / "py" / "hot_mask.nii.gz"))
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), mask.array)
    # The rest of the pipeline gives the bytes the CLI gives.
    cli = subprocess.run([FUSIONFLOW_EXE, "run", str(EXAMPLES / "pet_ct_mri_fusion.json"), "--threads", "2",
                          "--no-progress"] + [arg for name, value in {**variables, "out": str(tmp_path / "cli")}.items()
                                              for arg in ("--set", f"{name}={value}")],
                         capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    for name in ("fused.nii.gz", "metrics.csv", "mri_on_ct.nii.gz"):
        assert (tmp_path / "py" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    np.testing.assert_array_equal(np.asanyarray(nibabel.load(str(tmp_path / "cli" / "fused.nii.gz")).dataobj),
                                  fused.array)
