"""Fuzzing the readers of user input with hypothesis: the config parser (``--set`` overrides and
YAML files of every job, sweep files), the PNG readers (the dataset's and ``jobs/denoise.py``'s,
with its own 16-bit decoder) and the ``.mat`` readers (MATLAB v5 and v7.3).

The property is the same everywhere: any input gives either a valid result or the project's own
error naming the file or key at fault, never another exception. The examples are derandomized, so
``make test`` is repeatable; ``HYPOTHESIS_PROFILE=deep`` runs many more, randomly.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from orchestrator.config import ConfigError, build, flatten, to_dict
from orchestrator.data import files, images
from orchestrator.data.files import DatasetError
from orchestrator.schema import CorrelationConfig, DenoiseConfig, StudyConfig
from orchestrator.study.catalogue import catalogue, load_profile, resolve, selected
from orchestrator.study.sweep import load_sweep, variants
from tests.files import with_ihdr

_COMMON = {"deadline": None, "database": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=120, derandomize=True, **_COMMON)
settings.register_profile("deep", max_examples=3000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# ------------------------------------------------------------------------------------ config

_IDENT = st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_IDENT | st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)


def _keys(cls) -> list[str]:
    """Every dotted key of ``cls``'s defaults and each of its prefixes."""
    out = set()
    for key in flatten(to_dict(cls())):
        parts = key.split(".")
        out |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return sorted(out)


_STUDY_KEYS = _keys(StudyConfig)
_STUDY_KEYS += ["overrides.ssid.bnn.train.steps", "pretrained.ssid.bnn", "models.ssid_bnn.dim", "custom.x"]


@st.composite
def _override(draw, keys: list[str]) -> str:
    key = draw(st.sampled_from(keys))
    key = draw(st.sampled_from([key, f"{key}.{draw(_IDENT)}", draw(_IDENT), key.rpartition(".")[0]]))
    if draw(st.booleans()):
        raw = yaml.safe_dump(draw(_VALUES), default_flow_style=True, width=10**6).strip()
        raw = raw.removesuffix("\n...").removesuffix("...").strip()
    else:
        raw = draw(st.text(max_size=20))
    return f"{key}={raw}" if draw(st.integers(0, 9)) else draw(st.text(max_size=20))


def _named_key(exc: ConfigError, overrides: list[str]) -> None:
    """A ConfigError names a key (dotted path) that one of the overrides set, or the whole value."""
    assert str(exc)
    if exc.key:
        first = re.sub(r"\[\d+\]$", "", exc.key.split(".")[0])
        sets = {o.partition("=")[0].strip().removeprefix("--").split(".")[0] for o in overrides}
        assert first in sets | {"profile", "custom", "overrides", "pretrained", "stages", "ablations"}, (
            exc.key,
            overrides,
        )


@given(overrides=st.lists(_override(_STUDY_KEYS), max_size=4))
def test_fuzz_study_overrides(overrides):
    """``jobs/ablations.py --set ...``: the config built, then every selected ablation resolved."""
    try:
        study = load_profile("smoke", overrides)
        for name in selected(study):
            resolve(study, name)
        catalogue(study)
    except ConfigError as exc:
        _named_key(exc, overrides)


@pytest.mark.parametrize("cls", [CorrelationConfig, DenoiseConfig])
@given(data=st.data())
def test_fuzz_job_overrides(cls, data):
    overrides = data.draw(st.lists(_override(_keys(cls)), max_size=4))
    try:
        assert isinstance(build(cls, None, overrides), cls)
    except ConfigError as exc:
        _named_key(exc, overrides)


@st.composite
def _yaml_file(draw) -> bytes:
    kind = draw(st.integers(0, 2))
    if kind == 0:  # random bytes: not UTF-8, not YAML, binary
        return draw(st.binary(max_size=64))
    if kind == 1:  # random text
        return draw(st.text(max_size=64)).encode()
    doc = draw(st.dictionaries(st.sampled_from(_STUDY_KEYS) | _IDENT, _VALUES, max_size=5))
    nested: dict = {}
    for key, value in doc.items():  # dotted keys written as nested mappings
        node = nested
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[last] = value
    return yaml.safe_dump(nested).encode()


@given(content=_yaml_file())
def test_fuzz_yaml_config_files(tmp_path_factory, content):
    """``--config FILE`` and profiles given as a path: the error names the file."""
    path = tmp_path_factory.mktemp("cfg") / "study.yaml"
    path.write_bytes(content)
    try:
        study = load_profile(str(path))
        for name in selected(study):
            resolve(study, name)
    except ConfigError as exc:  # a type error names the file; a later check, the key at fault
        assert str(path) in str(exc) or exc.key, str(exc)


_SPACE = st.dictionaries(
    st.sampled_from(["train.lgbpn.optim.lr", "train.ssid.batch", "models.ssid_bnn.dim", "nope.x"]),
    st.dictionaries(
        st.sampled_from(["grid", "choice", "uniform", "loguniform", "randint", "quniform", "x"]),
        _VALUES,
        min_size=0,
        max_size=2,
    ),
    max_size=2,
)


@given(space=_SPACE, samples=st.integers(-1, 3) | _VALUES, extra=st.dictionaries(_IDENT, _VALUES, max_size=2))
def test_fuzz_sweep_files(tmp_path_factory, space, samples, extra):
    """``jobs/sweep.py SWEEP.yaml``: a sweep file parsed and expanded into its studies."""
    path = tmp_path_factory.mktemp("sweep") / "sweep.yaml"
    path.write_text(yaml.safe_dump({"space": space, "samples": samples, **extra}))
    try:
        sweep = load_sweep(path)
        for v in variants(load_profile("smoke"), sweep):
            assert v.study.profile == "smoke"
    except ConfigError as exc:
        assert exc.key or str(path) in str(exc)


# --------------------------------------------------------------------------------------- PNG


def _png8(h: int = 5, w: int = 7) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)).save(buf, format="PNG")
    return buf.getvalue()


def _png16(tmp: Path, h: int = 5, w: int = 7) -> bytes:
    images.write_image(tmp / "base16.png", (np.arange(h * w * 3, dtype=np.uint16) * 997).reshape(h, w, 3))
    return (tmp / "base16.png").read_bytes()


@st.composite
def _mutated(draw, base: bytes) -> bytes:
    """Bytes flipped, cut short or inserted; or a valid file with a rewritten IHDR (its CRC made
    right, so the decoders get past the checksum)."""
    kind = draw(st.integers(0, 3))
    data = bytearray(base)
    if kind == 0:
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif kind == 1:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == 2:
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=16))
    else:
        interesting = st.sampled_from([0, 1, 2, 3, 7, 5000, 2**16, 2**31 - 1, 2**32 - 1])
        data = with_ihdr(
            base,
            draw(interesting),
            draw(interesting),
            draw(st.sampled_from([1, 2, 4, 8, 16, 3, 255])),
            draw(st.sampled_from([0, 2, 3, 4, 6, 1, 7])),
            draw(st.sampled_from([0, 1])),
            draw(st.sampled_from([0, 1])),
            draw(st.sampled_from([0, 1, 2])),
        )
    return bytes(data)


def _check_image(path: Path, read) -> None:
    try:
        a = read(path)
    except images.ImageError as exc:
        assert exc.path == str(path)
        return
    except DatasetError as exc:
        assert [str(p) for p, _ in exc.problems] == [str(path)], exc.problems
        return
    assert isinstance(a, np.ndarray) and a.ndim == 3 and a.shape[2] == 3 and a.dtype in (np.uint8, np.uint16)


@pytest.fixture(scope="module")
def png_bases(tmp_path_factory):
    return {"8": _png8(), "16": _png16(tmp_path_factory.mktemp("png"))}


@given(data=st.data())
def test_fuzz_png_readers(png_bases, tmp_path_factory, data):
    """The dataset's reader (``read_png``, ``png_size``) and the denoise job's (``read_image``) on
    damaged 8- and 16-bit PNGs."""
    base = png_bases[data.draw(st.sampled_from(["8", "16"]))]
    path = tmp_path_factory.mktemp("img") / "x.png"
    path.write_bytes(data.draw(_mutated(base)))
    _check_image(path, images.read_image)
    _check_image(path, files.read_png)
    try:
        h, w, _ = files.png_size(path)
        assert h >= 0 and w >= 0
    except DatasetError as exc:
        assert [str(p) for p, _ in exc.problems] == [str(path)]


# -------------------------------------------------------------------------------------- .mat


@pytest.fixture(scope="module")
def mat_bases(tmp_path_factory):
    import h5py
    from scipy.io import savemat

    tmp = tmp_path_factory.mktemp("mat")
    blocks = np.arange(1 * 2 * 4 * 4 * 3, dtype=np.uint8).reshape(1, 2, 4, 4, 3)
    files.save_blocks(tmp / "v5.mat", "Blocks", blocks)
    savemat(tmp / "v7.mat", {"Blocks": blocks, "note": "x"}, do_compression=True)  # zlib elements
    with h5py.File(tmp / "v73.mat", "w", userblock_size=512) as f:
        f.create_dataset("Blocks", data=np.ascontiguousarray(blocks.transpose(4, 3, 2, 1, 0)))
    with open(tmp / "v73.mat", "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .")
    return {k: (tmp / f"{k}.mat").read_bytes() for k in ("v5", "v7", "v73")}


def _check_blocks(path: Path) -> None:
    try:
        files.mat_variables(path)
        shape = files.check_blocks_file(path, "Blocks")
        arr = files.load_blocks(path, "Blocks")
    except DatasetError as exc:
        assert [str(p) for p, _ in exc.problems] and {str(p) for p, _ in exc.problems} == {str(path)}
        return
    assert arr.dtype == np.uint8 and arr.ndim == 5 and arr.shape[-1] == 3 and arr.shape == tuple(shape)


@given(data=st.data())
def test_fuzz_mat_readers_on_damaged_files(mat_bases, tmp_path_factory, data):
    base = mat_bases[data.draw(st.sampled_from(["v5", "v7", "v73"]))]
    path = tmp_path_factory.mktemp("mat") / "blocks.mat"
    path.write_bytes(data.draw(_mutated(base)))
    _check_blocks(path)


_DTYPES = st.sampled_from([np.uint8, np.uint16, np.int8, np.float32, np.float64, np.bool_])


@given(
    shape=st.lists(st.integers(0, 3), min_size=0, max_size=6),
    dtype=_DTYPES,
    name=st.sampled_from(["Blocks", "blocks", "Other"]),
    v73=st.booleans(),
)
def test_fuzz_mat_readers_on_wrong_variables(tmp_path_factory, shape, dtype, name, v73):
    """Well-formed files holding the wrong variable, shape or dtype."""
    import h5py
    from scipy.io import savemat

    path = tmp_path_factory.mktemp("mat") / "blocks.mat"
    arr = np.zeros(shape, dtype=dtype)
    if v73:
        with h5py.File(path, "w", userblock_size=512) as f:
            f.create_dataset(name, data=arr.T if arr.ndim else arr)
    else:
        savemat(path, {name: arr})
    _check_blocks(path)
