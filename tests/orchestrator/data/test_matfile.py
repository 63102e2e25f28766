"""The level-5 ``.mat`` reader against scipy's: the same variables, shapes, classes and arrays,
for files scipy writes (compressed or not, numeric and other classes, several variables)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.io import loadmat, savemat, whosmat

from orchestrator.data import matfile

_DTYPES = st.sampled_from(
    ["uint8", "int8", "uint16", "int16", "int32", "uint32", "float32", "float64", "int64"]
)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(
    arrs=st.lists(
        _DTYPES.flatmap(
            lambda dt: arrays(dt, st.lists(st.integers(0, 4), min_size=2, max_size=5).map(tuple))
        ),
        min_size=1,
        max_size=3,
    ),
    compressed=st.booleans(),
)
def test_same_as_scipy(tmp_path_factory, arrs, compressed):
    path = tmp_path_factory.mktemp("mat") / "x.mat"
    data = {f"v{i}": a for i, a in enumerate(arrs)}
    data["label"] = "some text"  # a char array: listed, not read as numbers
    data["cells"] = np.array([[1, "a"]], dtype=object)
    savemat(path, data, do_compression=compressed)
    ours = {v.name: (v.shape, v.cls) for v in matfile.variables(path)}
    scipy_says = {name: (tuple(shape), cls) for name, shape, cls in whosmat(path)}
    assert ours.keys() == scipy_says.keys()
    assert ours["label"] == ((1, 9), "char") and ours["cells"] == ((1, 2), "cell")  # MATLAB's shapes
    for name in (f"v{i}" for i in range(len(arrs))):
        assert ours[name] == scipy_says[name]
    theirs = loadmat(path)
    for name in (f"v{i}" for i in range(len(arrs))):
        got = matfile.read_array(path, name)
        assert got.dtype == theirs[name].dtype and got.shape == theirs[name].shape
        np.testing.assert_array_equal(got, theirs[name])


def test_big_endian_file(tmp_path):
    """A file written big-endian (MI): sizes and data are read in its byte order."""
    a = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    path = tmp_path / "le.mat"
    savemat(path, {"A": a}, do_compression=False)
    raw = bytearray(path.read_bytes())
    # Rewrite every 32-bit word of the element tags and sub-elements in big-endian order.
    out = bytearray(raw[:124]) + (0x0100).to_bytes(2, "big") + b"MI"
    body = raw[128:]
    words = np.frombuffer(bytes(body[:48]), "<u4").astype(">u4").tobytes()  # tag, flags, dims
    name_tag = np.frombuffer(bytes(body[48:52]), "<u4").astype(">u4").tobytes() + bytes(body[52:56])
    data_tag = np.frombuffer(bytes(body[56:64]), "<u4").astype(">u4").tobytes()
    data = np.frombuffer(bytes(body[64 : 64 + a.size * 2]), "<u2").astype(">u2").tobytes()
    out += words + name_tag + data_tag + data + bytes(body[64 + a.size * 2 :])
    path.write_bytes(bytes(out))
    np.testing.assert_array_equal(matfile.read_array(path, "A"), a)
    assert matfile.variables(path)[0].shape == (2, 3, 4)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:100], "shorter than a MAT-file header"),
        (lambda b: b[:126] + b"XX" + b[128:], "no endian indicator"),
        (lambda b: b[:-10], "past byte"),
        (lambda b: b[:201] + b"\x0a" + b[202:], "data of type 2562 is not numeric"),
        (lambda b: b[:202] + b"\x04\x00" + b[204:], "its data holds 4 bytes, but shape (1, 2, 4, 4, 3)"),
        (lambda b: b[:202] + b"\x0a\x00" + b[204:], "declares 10 bytes (at most 4)"),
    ],
)
def test_damaged_files_say_what_is_wrong(tmp_path, damage, message):
    """The fourth case, an unknown data type code, crashes scipy's reader (a segmentation fault)."""
    path = tmp_path / "blocks.mat"
    savemat(path, {"Blocks": np.arange(96, dtype=np.uint8).reshape(1, 2, 4, 4, 3)}, do_compression=False)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(matfile.MatError, match=message.replace("(", r"\(").replace(")", r"\)")):
        matfile.read_array(path, "Blocks")
