"""MATLAB level-5 ``.mat`` files (v5 to v7, as SIDD distributes its blocks): the name, shape and
class of each variable, and numeric arrays, with every size checked against the file first.

scipy's reader trusts the sizes a file declares: a damaged file can crash the process (a data
element shorter than its dimensions ends in a segmentation fault). This reader checks each
element against its container before touching its data, so a damaged file is a
:class:`MatError` that says what is wrong, and where. MATLAB v7.3 files are HDF5
(:mod:`orchestrator.data.sidd` reads those with h5py).

The layout (MathWorks, "MAT-File Format", level 5): a 128-byte header ending in the version and
an endian indicator (``IM`` little-endian, ``MI`` big-endian), then data elements, each an
8-byte tag (type, byte count) and its data padded to 8 bytes. A tag whose upper 16 bits are set
is a small element: the count is in those bits and up to 4 bytes of data follow in the tag.
``miCOMPRESSED`` elements hold one zlib-compressed element; ``miMATRIX`` elements hold array
flags, dimensions, a name and, for numeric classes, the real (and imaginary) part.
"""

from __future__ import annotations

import math
import mmap
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MatError", "MatVariable", "variables", "read_array"]

MI_INT8, MI_INT32, MI_UINT32, MI_MATRIX, MI_COMPRESSED = 1, 5, 6, 14, 15
# Storage types of numeric data, by miTYPE code.
MI_DTYPES = {
    1: "i1",
    2: "u1",
    3: "i2",
    4: "u2",
    5: "i4",
    6: "u4",
    7: "f4",
    9: "f8",
    12: "i8",
    13: "u8",
}
CLASSES = {
    1: "cell",
    2: "struct",
    3: "object",
    4: "char",
    5: "sparse",
    6: "double",
    7: "single",
    8: "int8",
    9: "uint8",
    10: "int16",
    11: "uint16",
    12: "int32",
    13: "uint32",
    14: "int64",
    15: "uint64",
    16: "function_handle",
    17: "opaque",
}
NUMERIC = {CLASSES[code]: np.dtype(CLASSES[code]) for code in range(6, 16)}  # double .. uint64
COMPLEX_FLAG = 0x0800
HEADER = 128
MAX_BYTES = 1 << 36  # a variable declaring more than 64 GiB is taken for a damaged file
_HEAD_PEEK = 1 << 16  # of a compressed variable, enough to hold its flags, dimensions and name


class MatError(ValueError):
    """The file is not a level-5 MAT-file, or one of its elements is damaged."""


@dataclass(frozen=True)
class MatVariable:
    name: str
    shape: tuple[int, ...]  # MATLAB order
    cls: str  # MATLAB class: uint8, double, cell, struct, ...
    complex: bool = False


@dataclass(frozen=True)
class _Element:
    kind: int
    start: int  # first data byte
    size: int
    end: int  # where the next element starts


def _element(buf, pos: int, limit: int, order: str, what: str, *, whole: bool = True) -> _Element:
    """The element whose tag is at ``pos``, checked to end by ``limit`` (``whole`` False: only its
    tag, for a peek at the start of a compressed element)."""
    if pos + 8 > limit:
        raise MatError(f"{what}: tag at byte {pos} cut short (the element ends at byte {limit})")
    kind, size = struct.unpack_from(order + "II", buf, pos)
    if kind >> 16:  # small element: count in the upper half, data in the tag's second word
        kind, size = kind & 0xFFFF, kind >> 16
        if size > 4:
            raise MatError(f"{what}: small element at byte {pos} declares {size} bytes (at most 4)")
        return _Element(kind, pos + 4, size, pos + 8)
    end = pos + 8 + size
    if whole and end > limit:
        raise MatError(f"{what}: element at byte {pos} declares {size} bytes, past byte {limit}")
    padded = end if kind == MI_COMPRESSED else pos + 8 + (size + 7) // 8 * 8
    return _Element(kind, pos + 8, size, min(padded, limit))


def _byte_order(buf) -> str:
    if len(buf) < HEADER:
        raise MatError(f"{len(buf)} bytes: shorter than a MAT-file header ({HEADER} bytes)")
    indicator = bytes(buf[126:128])
    if indicator not in (b"IM", b"MI"):
        raise MatError("not a MATLAB 5.0 (v5-v7) MAT-file: no endian indicator at byte 126")
    order = "<" if indicator == b"IM" else ">"
    (version,) = struct.unpack_from(order + "H", buf, 124)
    if version != 0x0100:
        raise MatError(f"MAT-file version {version:#06x}; expected 0x0100")
    return order


def _matrix_head(buf, el: _Element, order: str) -> tuple[MatVariable, int, int]:
    """The variable an ``miMATRIX`` element holds, where its data starts, and where the element
    ends in ``buf`` (which may stop before the element's end: a peek into a compressed one)."""
    limit = min(el.start + el.size, len(buf))
    flags = _element(buf, el.start, limit, order, "array flags")
    if flags.kind != MI_UINT32 or flags.size != 8:
        raise MatError(f"array flags at byte {el.start}: type {flags.kind}, {flags.size} bytes; expected 8")
    (word,) = struct.unpack_from(order + "I", buf, flags.start)
    cls = CLASSES.get(word & 0xFF)
    if cls is None:
        raise MatError(f"unknown array class {word & 0xFF} at byte {flags.start}")
    dims_el = _element(buf, flags.end, limit, order, "dimensions")
    if dims_el.kind != MI_INT32 or dims_el.size % 4 or dims_el.size < 8:
        raise MatError(f"dimensions at byte {flags.end}: type {dims_el.kind}, {dims_el.size} bytes")
    shape = struct.unpack_from(f"{order}{dims_el.size // 4}i", buf, dims_el.start)
    if min(shape) < 0:
        raise MatError(f"negative dimension in {shape}")
    name_el = _element(buf, dims_el.end, limit, order, "array name")
    if name_el.kind != MI_INT8:
        raise MatError(f"array name at byte {dims_el.end}: type {name_el.kind}; expected int8 text")
    name = bytes(buf[name_el.start : name_el.start + name_el.size]).decode("ascii", "replace")
    return MatVariable(name, tuple(shape), cls, bool(word & COMPLEX_FLAG)), name_el.end, limit


def _check_data(var: MatVariable, real: _Element) -> np.dtype:
    """The storage dtype of a numeric variable's real part, its size checked against the shape."""
    if real.kind not in MI_DTYPES:
        raise MatError(f"variable {var.name!r}: data of type {real.kind} is not numeric")
    stored = np.dtype(MI_DTYPES[real.kind])
    need = math.prod(var.shape) * stored.itemsize
    if need > MAX_BYTES:
        raise MatError(f"variable {var.name!r}: shape {var.shape} declares {need} bytes")
    if real.size != need:
        raise MatError(
            f"variable {var.name!r}: its data holds {real.size} bytes, but shape {var.shape} of "
            f"{stored} needs {need}"
        )
    return stored


def _inflate(data, *, max_length: int = 0) -> bytes:
    """zlib data inflated (at most ``max_length`` bytes when given)."""
    try:
        z = zlib.decompressobj()
        return z.decompress(data, max_length) if max_length else z.decompress(data) + z.flush()
    except zlib.error as exc:
        raise MatError(f"compressed element damaged ({exc})") from None


def _peek(buf, el: _Element) -> bytes:
    """The first compressed bytes of ``el``: plenty for ``_HEAD_PEEK`` inflated bytes."""
    return buf[el.start : el.start + min(el.size, 4 * _HEAD_PEEK)]


def _elements(buf, order: str):
    pos = HEADER
    while pos < len(buf):
        el = _element(buf, pos, len(buf), order, "file")
        yield el
        pos = el.end


def _open(path: Path):
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            raise MatError("empty file")
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def variables(path: str | Path) -> list[MatVariable]:
    """Every variable in the file, without reading their data."""
    buf = _open(Path(path))
    try:
        order = _byte_order(buf)
        out = []
        for el in _elements(buf, order):
            if el.kind == MI_COMPRESSED:
                head = _inflate(_peek(buf, el), max_length=_HEAD_PEEK)
                where = f"compressed element at byte {el.start}"
                inner = _element(head, 0, len(head), order, where, whole=False)
                if inner.kind == MI_MATRIX:
                    out.append(_matrix_head(head, inner, order)[0])
            elif el.kind == MI_MATRIX:
                var, data_at, limit = _matrix_head(buf, el, order)
                if var.cls in NUMERIC:
                    _check_data(var, _element(buf, data_at, limit, order, f"variable {var.name!r}"))
                out.append(var)
        return out
    finally:
        buf.close()


def read_array(path: str | Path, name: str) -> np.ndarray:
    """The numeric variable ``name`` as an array of its MATLAB class, in MATLAB's shape.

    Raises:
        MatError: not a level-5 MAT-file, damaged, no numeric variable ``name``, or complex.
    """
    buf = _open(Path(path))
    try:
        order = _byte_order(buf)
        for el in _elements(buf, order):
            if el.kind == MI_COMPRESSED:
                peek = _inflate(_peek(buf, el), max_length=_HEAD_PEEK)
                where = f"compressed element at byte {el.start}"
                inner = _element(peek, 0, len(peek), order, where, whole=False)
                if inner.kind != MI_MATRIX or _matrix_head(peek, inner, order)[0].name != name:
                    continue
                if inner.size > MAX_BYTES:
                    raise MatError(f"variable {name!r}: {where} declares {inner.size} bytes")
                data = _inflate(buf[el.start : el.start + el.size], max_length=8 + inner.size)
                if len(data) < 8 + inner.size:
                    raise MatError(f"variable {name!r}: {where} inflates to fewer bytes than it declares")
                return _array(data, inner, order)
            if el.kind == MI_MATRIX and _matrix_head(buf, el, order)[0].name == name:
                return _array(buf, el, order)
        raise MatError(f"no variable {name!r}")
    finally:
        buf.close()


def _array(buf, el: _Element, order: str) -> np.ndarray:
    var, data_at, limit = _matrix_head(buf, el, order)
    if var.cls not in NUMERIC:
        raise MatError(f"variable {var.name!r} is a {var.cls}, not a numeric array")
    if var.complex:
        raise MatError(f"variable {var.name!r} is complex")
    real = _element(buf, data_at, limit, order, f"variable {var.name!r}")
    stored = _check_data(var, real).newbyteorder(order)
    flat = np.frombuffer(buf, stored, count=math.prod(var.shape), offset=real.start)
    return flat.astype(NUMERIC[var.cls]).reshape(var.shape, order="F")  # a copy: buf may close
