"""Volumes, Tables and Latents as NumPy arrays: zero copies, geometry round trips against nibabel."""

import nibabel
import numpy as np
import pytest

import fusionflow as ff


def _address(array):
    return array.__array_interface__["data"][0]


def _passthrough(kind):
    pipeline = ff.Pipeline()
    pipeline.add_node("value", f"python.input_{kind}")
    pipeline.add_node("out", f"python.output_{kind}").connect(f"value.{kind}", f"out.{kind}")
    return pipeline


def test_volumes_go_in_and_come_out_without_a_copy():
    volume = ff.Volume.empty((5, 6, 7), spacing=(0.5, 1.0, 2.0), origin=(1, 2, 3), modality="MR", units="a.u.")
    array = volume.array
    assert array.shape == (5, 6, 7) and array.dtype == np.float32 and array.flags["F_CONTIGUOUS"]
    array[...] = np.arange(5 * 6 * 7, dtype=np.float32).reshape((5, 6, 7), order="F")
    assert _address(array) == volume.data_pointer
    result = _passthrough("volume").run(inputs={"value": volume})
    out = result.outputs["out"]
    # The pipeline handed back the very memory Python filled: no copy either way.
    assert out.data_pointer == volume.data_pointer
    assert _address(out.array) == _address(array)
    assert out.array[4, 5, 6] == 5 * 6 * 7 - 1
    assert not out.array.flags.writeable and not volume.writable
    with pytest.raises(ValueError, match="read-only"):
        volume.set_metadata(modality="CT")
    assert out.spacing == (0.5, 1.0, 2.0) and out.origin == (1.0, 2.0, 3.0) and out.modality == "MR"
    writable = out.copy()
    assert writable.writable and writable.data_pointer != out.data_pointer


def test_a_float32_fortran_array_is_borrowed_by_the_pipeline_without_a_copy():
    data = np.asfortranarray(np.random.default_rng(2).random((6, 5, 4)), dtype=np.float32)
    expected = data.copy(order="F")
    volume = ff.Volume(data, spacing=(1, 2, 3), modality="MR")
    assert volume.borrowed and volume.data_pointer == _address(data)
    assert _address(volume.array) == _address(data)
    # Through a pipeline and back: the output is the caller's own memory.
    out = _passthrough("volume").run(inputs={"value": volume}).outputs["out"]
    assert out.data_pointer == _address(data)
    # A C++ node that changes its input works on a copy: the borrowed array is untouched.
    pipeline = ff.Pipeline()
    pipeline.add_node("mri", "python.input_volume")
    pipeline.add_node("norm", "normalize.intensity", mode="minmax").connect("mri.volume", "norm.volume")
    normalized = pipeline.run(inputs={"mri": volume}, outputs=["norm.volume"]).outputs["norm.volume"]
    assert normalized.data_pointer != _address(data)
    assert normalized.array.min() == 0.0 and normalized.array.max() == 1.0
    np.testing.assert_array_equal(data, expected)
    # The volume keeps the array alive after the caller lets it go.
    del data, out, normalized
    import gc

    gc.collect()
    np.testing.assert_array_equal(volume.array, expected)
    assert volume.copy().data_pointer != volume.data_pointer and not volume.copy().borrowed


def test_a_volume_made_inside_a_run_borrows_its_array_safely_across_threads():
    # The borrowed array's last reference goes on an executor thread (the input
    # is dropped with the run's values): the GIL is taken to release it.
    pipeline = ff.Pipeline()
    pipeline.add_node("value", "python.input_volume")
    pipeline.add_node("norm", "normalize.intensity", mode="minmax").connect("value.volume", "norm.volume")
    for seed in range(5):
        data = np.asfortranarray(np.random.default_rng(seed).random((16, 16, 8)), dtype=np.float32)
        result = pipeline.run(inputs={"value": ff.Volume(data)}, outputs=["norm.volume"], threads=2)
        del data
        assert result.outputs["norm.volume"].shape == (16, 16, 8)


def test_arrays_that_need_a_conversion_are_copied_once_or_refused():
    data = np.random.default_rng(1).random((4, 3, 2)).astype(np.float64)
    volume = ff.Volume(data, spacing=(1, 2, 3))
    assert not volume.borrowed and volume.data_pointer != _address(data)
    np.testing.assert_array_equal(volume.array, data.astype(np.float32))
    c_order = np.ascontiguousarray(data, dtype=np.float32)
    assert not ff.Volume(c_order).borrowed
    with pytest.raises(ValueError, match=r"copy=False\) borrows float32 arrays in Fortran order"):
        ff.Volume(c_order, copy=False)
    with pytest.raises(ValueError, match="copy=False"):
        ff.Volume(data, copy=False)
    fortran = np.asfortranarray(c_order)
    assert ff.Volume(fortran, copy=False).borrowed
    assert not ff.Volume(fortran, copy=True).borrowed
    # A read-only array stays read-only through the volume.
    fortran.flags.writeable = False
    frozen = ff.Volume(fortran)
    assert frozen.borrowed and not frozen.writable and not frozen.array.flags.writeable
    flat = ff.Volume(np.ones((8, 9), np.float32, order="F"))
    assert flat.shape == (8, 9, 1) and flat.borrowed
    with pytest.raises(ValueError, match="spacing must be positive"):
        ff.Volume(data, spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="3x3"):
        ff.Volume(data, direction=np.eye(2))
    with pytest.raises(TypeError, match="unknown volume field 'modalty'"):
        ff.Volume(data, modalty="CT")


def test_a_volume_from_nibabel_is_written_by_fusionflow_with_the_same_affine(tmp_path):
    # An oblique, anisotropic grid with an offset origin (RAS, as nibabel holds it).
    angle = np.deg2rad(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([0.9, 1.1, 2.5])
    affine[:3, 3] = [-40.0, 25.5, -12.0]
    data = np.random.default_rng(2).random((11, 12, 13)).astype(np.float32)
    source = nibabel.Nifti1Image(data, affine)
    volume = ff.from_nibabel(source, modality="MR")
    pipeline = ff.Pipeline()
    pipeline.add_node("mri", "python.input_volume")
    pipeline.add_node("write", "io.write", path=str(tmp_path / "mri.nii.gz")).connect("mri.volume", "write.volume")
    pipeline.run(inputs={"mri": volume})
    written = nibabel.load(str(tmp_path / "mri.nii.gz"))
    np.testing.assert_allclose(written.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), data)
    np.testing.assert_allclose(ff.to_nibabel(volume).affine, affine, atol=1e-9)


def test_a_file_read_by_fusionflow_has_the_geometry_nibabel_reads(tmp_path):
    # A flipped, rotated (about y), anisotropic grid.
    angle = np.deg2rad(-15)
    rotation = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-1.2, 1.3, 3.0])
    affine[:3, 3] = [90.0, -120.0, -60.0]
    data = (np.random.default_rng(3).random((9, 10, 7)) * 1000 - 500).astype(np.float32)
    nibabel.Nifti1Image(data, affine).to_filename(str(tmp_path / "ct.nii.gz"))
    pipeline = ff.Pipeline()
    pipeline.add_node("ct", "io.load_ct", path=str(tmp_path / "ct.nii.gz"))
    result = pipeline.run(outputs=["ct.volume"])
    ct = result.outputs["ct.volume"]
    reference = nibabel.load(str(tmp_path / "ct.nii.gz"))
    np.testing.assert_allclose(ff.to_nibabel(ct).affine, reference.affine, atol=1e-4)
    np.testing.assert_array_equal(ct.array, np.asanyarray(reference.dataobj))
    assert ct.modality == "CT" and not ct.array.flags.writeable


def test_tables_are_dicts_of_arrays_or_lists_of_rows():
    table = ff.Table({"label": ["a", "b", None], "value": [1.5, None, 3]})
    assert table.columns == ["label", "value"] and len(table) == 3
    assert table.rows()[1] == {"label": "b", "value": None}
    columns = table.to_dict()
    assert columns["label"] == ["a", "b", None]
    np.testing.assert_array_equal(columns["value"], [1.5, np.nan, 3.0])
    out = _passthrough("table").run(inputs={"value": table}).outputs["out"]
    assert out.rows() == table.rows()
    from_rows = _passthrough("table").run(inputs={"value": [{"x": 1}, {"y": "t"}]}).outputs["out"]
    assert from_rows.rows() == [{"x": 1.0, "y": None}, {"x": None, "y": "t"}]
    with pytest.raises(ValueError, match="has 1 cells, the others 2"):
        ff.Table({"a": [1, 2], "b": [3]})


def test_latent_levels_are_arrays_without_a_copy(phantom):
    pipeline = ff.Pipeline()
    pipeline.add_node("ct", "python.input_volume")
    pipeline.add_node("norm", "normalize.intensity", mode="ct_window").connect("ct.volume", "norm.volume")
    pipeline.add_node("latent", "encode.laplacian_pyramid", levels=3).connect("norm.volume", "latent.volume")
    result = pipeline.run(inputs={"ct": phantom["ct"]}, outputs=["latent.latent", "norm.volume"])
    latent = result.outputs["latent.latent"]
    assert latent.kind == "laplacian_pyramid" and len(latent.levels) == 3 + 1  # three detail levels and the base
    level = latent.levels[0]
    assert level.array.shape == (*level.geometry.size, level.channels)
    assert _address(level.array) == _address(latent.levels[0].array)
    assert not level.array.flags.writeable
    # A latent made in Python (the same levels) decodes to the same volume as the encoder's.
    rebuilt = ff.Latent(latent.kind, [{"name": lv.name, "role": lv.role, "array": lv.array, "geometry": lv.geometry}
                                      for lv in latent.levels],
                        like=result.outputs["norm.volume"], encoder_params=latent.encoder_params)
    decode = ff.Pipeline()
    decode.add_node("latent", "python.input_latent")
    decode.add_node("decoded", "decode.latent").connect("latent.latent", "decoded.latent")
    from_python = decode.run(inputs={"latent": rebuilt}, outputs=["decoded.volume"]).outputs["decoded.volume"]
    from_encoder = decode.run(inputs={"latent": latent}, outputs=["decoded.volume"]).outputs["decoded.volume"]
    np.testing.assert_array_equal(from_python.array, from_encoder.array)
    np.testing.assert_allclose(from_encoder.array, result.outputs["norm.volume"].array, atol=1e-5)


def test_values_without_a_python_view_pass_from_one_run_to_another(phantom):
    pipeline = ff.Pipeline()
    pipeline.add_node("ct", "python.input_volume").add_node("mri", "python.input_volume")
    pipeline.add_node("reg", "register.rigid").connect("ct.volume", "reg.fixed").connect("mri.volume", "reg.moving")
    transform = pipeline.run(inputs={"ct": phantom["ct"], "mri": phantom["t1"]},
                             outputs=["reg.transform"], threads=2).outputs["reg.transform"]
    assert transform.type_name == "Transform"
    apply = ff.Pipeline()
    apply.add_node("t", "python.input_transform").add_node("ct", "python.input_volume")
    apply.add_node("mri", "python.input_volume")
    apply.add_node("res", "resample.apply").connect("t.transform", "res.transform")
    apply.connect("ct.volume", "res.reference").connect("mri.volume", "res.volume")
    resampled = apply.run(inputs={"t": transform, "ct": phantom["ct"], "mri": phantom["t1"]},
                          outputs=["res.volume"]).outputs["res.volume"]
    assert resampled.geometry.same_grid(phantom["ct"].geometry)
    with pytest.raises(TypeError, match="it holds a Transform"):
        _passthrough("volume").run(inputs={"value": transform})
