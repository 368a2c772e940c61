"""Pipelines from Python: loading with the CLI's checks, building in code, running, records, cancelling."""

import json
import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

import fusionflow as ff
from conftest import EXAMPLES

FUSIONFLOW_EXE = os.environ.get("FUSIONFLOW_EXE", "fusionflow")


def test_a_broken_file_raises_the_problems_the_cli_prints(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({
        "format_version": 1,
        "nodes": [
            {"id": "ct", "type": "io.load_ct", "params": {"path": str(tmp_path / "missing.nii.gz")}},
            {"id": "smooth", "type": "filter.smoth", "inputs": {"volume": "ct.volume"}},
            {"id": "norm", "type": "normalize.intensity", "inputs": {"volume": "ct.volume"},
             "params": {"mode": "percentile", "percentile_high": 140}},
        ],
    }))
    with pytest.raises(ff.PipelineError) as raised:
        ff.Pipeline.load(broken)
    problems = raised.value.problems
    locations = [problem.location for problem in problems]
    assert "/nodes/1/type" in locations
    assert "/nodes/2/params/percentile_high" in locations
    cli = subprocess.run([FUSIONFLOW_EXE, "validate", str(broken)], capture_output=True, text=True)
    assert cli.returncode == 2
    # The same lines, in the same order, as `fusionflow validate` prints.
    assert str(raised.value).splitlines() == [line for line in cli.stderr.splitlines() if line.strip()]
    assert isinstance(raised.value, ValueError)


def test_the_default_pipeline_loads_with_variables_and_lists_its_nodes(tmp_path, phantom):
    for name, volume in (("ct", phantom["ct"]), ("t1", phantom["t1"]), ("pet", phantom["pet"])):
        ff.to_nibabel(volume).to_filename(str(tmp_path / f"{name}.nii.gz"))
    variables = {"ct": str(tmp_path / "ct.nii.gz"), "mri": str(tmp_path / "t1.nii.gz"),
                 "pet": str(tmp_path / "pet.nii.gz"), "out": str(tmp_path / "out")}
    pipeline = ff.Pipeline.load(EXAMPLES / "pet_ct_mri_fusion.json", variables=variables)
    assert ("fuse", "fuse.latent") in pipeline.nodes
    order = pipeline.validate(variables=variables)
    assert order.index("ct") < order.index("mri_to_ct") < order.index("fused") < order.index("write_fused")
    with pytest.raises(ff.PipelineError) as raised:
        pipeline.validate(variables={"nope": "1"})
    assert "the pipeline declares no variable 'nope'" in str(raised.value)


def test_a_pipeline_built_in_code_saves_as_a_file_that_loads_the_same(tmp_path):
    pipeline = ff.Pipeline("built", directory=tmp_path)
    pipeline.variable("out", str(tmp_path / "out"), "output directory")
    pipeline.add_node("ct", "python.input_volume")
    pipeline.add_node("norm", "normalize.intensity", mode="percentile", percentile_low=1, percentile_high=99)
    pipeline.connect("ct.volume", "norm.volume")
    pipeline.add_node("write", "io.write").connect("norm.volume", "write.volume")
    pipeline.set_param_template("write", "path", "${out}/norm.nii.gz")
    text = pipeline.to_json()
    document = json.loads(text)
    assert document["variables"]["out"]["description"] == "output directory"
    assert document["nodes"][1]["params"] == {"mode": "percentile", "percentile_low": 1, "percentile_high": 99}
    assert document["nodes"][2]["params"]["path"] == "${out}/norm.nii.gz"
    pipeline.save(tmp_path / "built.json")
    again = ff.Pipeline.load(tmp_path / "built.json")
    assert again.to_json() == text
    assert again.nodes == pipeline.nodes
    # Text set with set_param is taken as it is: no variable substitution.
    literal = ff.Pipeline()
    literal.add_node("w", "io.write").set_param("w", "path", "cost $5 ${out}.nii.gz")
    assert json.loads(literal.to_json())["nodes"][0]["params"]["path"] == "cost $$5 $${out}.nii.gz"
    with pytest.raises(KeyError):
        pipeline.set_param("nobody", "x", 1)
    with pytest.raises(ValueError):
        pipeline.connect("ct", "norm.volume")


def test_a_run_writes_its_outputs_reports_progress_and_returns_its_record(tmp_path, phantom):
    pipeline = ff.Pipeline("run", directory=tmp_path)
    pipeline.add_node("ct", "python.input_volume")
    pipeline.add_node("norm", "normalize.intensity", mode="ct_window").connect("ct.volume", "norm.volume")
    pipeline.add_node("write", "io.write", path=str(tmp_path / "norm.nii.gz")).connect("norm.volume", "write.volume")
    pipeline.add_node("stats", "core.volume_stats").connect("norm.volume", "stats.volume")
    events = []
    lock = threading.Lock()

    def progress(node, fraction, status):
        with lock:
            events.append((node, fraction, status))

    result = pipeline.run(inputs={"ct": phantom["ct"]}, threads=2, progress=progress, outputs=["stats.stats"],
                          record=str(tmp_path / "run.json"))
    assert result.succeeded
    assert (tmp_path / "norm.nii.gz").stat().st_size > 0
    assert {node for node, _, status in events if status == "succeeded"} == {"ct", "norm", "write", "stats",
                                                                             "python_output_stats__stats"}
    record = result.record
    assert record["exit_code"] == 0
    assert record == json.loads((tmp_path / "run.json").read_text())
    assert [node["id"] for node in record["nodes"]][:4] == ["ct", "norm", "write", "stats"]
    assert record["nodes"][1]["params"]["mode"] == "ct_window"
    stats = result.outputs["stats.stats"].rows()[0]
    norm = ff.from_nibabel(__import__("nibabel").load(str(tmp_path / "norm.nii.gz")))
    assert stats["mean"] == pytest.approx(float(np.mean(norm.array, dtype=np.float64)), rel=1e-6)


def test_a_failing_node_raises_run_error_with_the_record(tmp_path):
    pipeline = ff.Pipeline()
    pipeline.add_node("ct", "python.input_volume")
    pipeline.add_node("fail", "py.always_fails_for_test").connect("ct.volume", "fail.volume")
    registry = ff.Registry()

    def always_fails(ctx):
        raise ValueError("this node always fails")

    registry.add_node("py.always_fails_for_test", always_fails, inputs=[ff.Input("volume")])
    with pytest.raises(ff.RunError) as raised:
        pipeline.run(inputs={"ct": ff.Volume.empty((4, 4, 4))}, registry=registry)
    assert "node 'fail' (type py.always_fails_for_test) failed" in str(raised.value)
    assert "ValueError: this node always fails" in str(raised.value)
    record = raised.value.result.record
    assert record["exit_code"] == 1
    assert [node["status"] for node in record["nodes"]] == ["succeeded", "failed"]


def test_inputs_are_checked_before_anything_runs():
    pipeline = ff.Pipeline()
    pipeline.add_node("ct", "python.input_volume").add_node("out", "python.output_volume")
    pipeline.connect("ct.volume", "out.volume")
    with pytest.raises(ValueError, match=r"node 'ct' \(python.input_volume\) takes its value from Python"):
        pipeline.run()
    with pytest.raises(ValueError, match="no Python input node 'mri'"):
        pipeline.run(inputs={"ct": ff.Volume.empty((2, 2, 2)), "mri": ff.Volume.empty((2, 2, 2))})
    with pytest.raises(TypeError, match=r"wrap an array with fusionflow.Volume"):
        pipeline.run(inputs={"ct": np.zeros((2, 2, 2), np.float32)})
    with pytest.raises(ValueError, match=r"node 'ct' \(python.input_volume\) has no output 'volumes'; its outputs: volume"):
        pipeline.run(inputs={"ct": ff.Volume.empty((2, 2, 2))}, outputs=["ct.volumes"])


def _slow_pipeline(registry, started):
    """A Python node that works in small steps and checks for cancellation between them."""

    def slow(ctx):
        started.set()
        for step in range(600):
            ctx.throw_if_cancelled()
            time.sleep(0.01)
            ctx.progress(step / 600)
        ctx.output("volume", ctx.input("volume"))

    registry.add_node("py.slow_for_test", slow, inputs=[ff.Input("volume")], outputs=[ff.Output("volume")])
    pipeline = ff.Pipeline()
    pipeline.add_node("ct", "python.input_volume")
    pipeline.add_node("slow", "py.slow_for_test").connect("ct.volume", "slow.volume")
    pipeline.add_node("out", "python.output_volume").connect("slow.volume", "out.volume")
    return pipeline


def test_a_cancel_token_stops_a_run_cleanly():
    registry = ff.Registry()
    started = threading.Event()
    pipeline = _slow_pipeline(registry, started)
    token = ff.CancelToken()
    threading.Thread(target=lambda: (started.wait(10), token.cancel())).start()
    begin = time.monotonic()
    with pytest.raises(ff.RunCancelled) as raised:
        pipeline.run(inputs={"ct": ff.Volume.empty((4, 4, 4))}, cancel=token, registry=registry)
    assert time.monotonic() - begin < 4.0  # the node stopped at its next check, not after 6 s
    result = raised.value.result
    assert result.stopped_by_user
    assert [node["status"] for node in result.record["nodes"]] == ["succeeded", "cancelled", "not_run"]


def test_ctrl_c_cancels_the_run_and_raises_keyboard_interrupt():
    registry = ff.Registry()
    started = threading.Event()
    pipeline = _slow_pipeline(registry, started)
    threading.Thread(target=lambda: (started.wait(10), os.kill(os.getpid(), signal.SIGINT))).start()
    begin = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(inputs={"ct": ff.Volume.empty((4, 4, 4))}, registry=registry)
    assert time.monotonic() - begin < 4.0
    # The registry and module still work after the interrupted run.
    done = pipeline.run(inputs={"ct": ff.Volume.empty((2, 2, 2))}, registry=registry)
    assert done.succeeded


def test_an_exception_in_the_progress_callback_cancels_and_is_raised():
    registry = ff.Registry()
    pipeline = _slow_pipeline(registry, threading.Event())

    def progress(node, fraction, status):
        if fraction > 0.05:
            raise RuntimeError("stop here")

    begin = time.monotonic()
    with pytest.raises(RuntimeError, match="stop here"):
        pipeline.run(inputs={"ct": ff.Volume.empty((4, 4, 4))}, progress=progress, registry=registry)
    assert time.monotonic() - begin < 4.0


def test_the_registry_lists_node_types_with_ports_and_parameters(registry):
    described = registry.describe()
    cli = json.loads(subprocess.run([FUSIONFLOW_EXE, "plugins", "--json"], capture_output=True, text=True,
                                    check=True).stdout)
    cli_types = {entry["type"]: entry for entry in cli["node_types"]}
    for entry in described["node_types"]:
        if entry["plugin"] != "python":
            assert cli_types[entry["type"]] == entry  # the same document as the CLI's
    fuse = registry.node_type("fuse.latent")
    assert [port["name"] for port in fuse["inputs"]] == ["latents"] and fuse["inputs"][0]["multi"]
    detail_rule = next(param for param in fuse["params"] if param["name"] == "detail_rule")
    assert detail_rule["kind"] == "choice" and "local_energy" in detail_rule["choices"]
    assert registry.node_type("python.input_volume")["outputs"][0] == {
        "name": "volume", "type": "Volume", "multi": False, "optional": False,
        "description": "the value given for this node's id"}
    with pytest.raises(KeyError, match="did you mean 'fuse.latent'"):
        registry.node_type("fuse.latnt")
    loaded = {plugin["name"] for plugin in registry.plugins() if plugin["loaded"]}
    assert {"core", "io", "register", "encode", "fuse", "decode", "metrics", "viz"} <= loaded
