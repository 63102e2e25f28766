"""sRGB images in and out: PNG, JPEG and TIFF, 8 and 16 bits per channel, three channels.

``read_image`` returns the pixels as stored (uint8 or uint16, (H, W, 3)); ``write_image`` writes
them back in the format its suffix names, keeping the bit depth (JPEG: 8 bits only). Pillow
reduces 16-bit RGB PNGs to 8 bits, so those go through libpng (``imagecodecs``) after every
chunk's CRC and the header's sizes are checked here; TIFFs go through ``tifffile``. Every failure
is an :class:`ImageError` naming the file and the reason.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.errors import InputError

__all__ = [
    "ImageError",
    "read_image",
    "write_image",
    "SUFFIXES",
    "to_model_range",
    "from_model_range",
    "png_chunk",
    "probe",
    "ImageInfo",
    "quantize_uint8",
    "to_uint8",
]

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
_PNG_SIG = b"\x89PNG\r\n\x1a\n"


class ImageError(InputError):
    """An image cannot be used: unreadable, or not three-channel 8/16-bit sRGB."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def _check(path: Path, a: np.ndarray) -> np.ndarray:
    if a.dtype not in (np.uint8, np.uint16):
        raise ImageError(path, f"{a.dtype} pixels; expected 8 or 16 bits per channel")
    if a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 1):
        raise ImageError(path, "one channel (grayscale); the denoisers take three-channel sRGB")
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ImageError(path, f"unexpected shape {a.shape}; expected (height, width, 3)")
    if a.shape[2] == 4:
        raise ImageError(path, "has an alpha channel; save it as RGB without alpha first")
    return np.ascontiguousarray(a)


def read_image(path: str | Path) -> np.ndarray:
    """The pixels of ``path``: uint8 or uint16, (H, W, 3)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ImageError(path, f"unsupported file type {suffix!r}; expected one of {list(SUFFIXES)}")
    try:
        if suffix in (".tif", ".tiff"):
            import tifffile

            return _check(path, tifffile.imread(path))
        head = path.read_bytes()[:33]
        if suffix == ".png" and head[:8] == _PNG_SIG and len(head) == 33 and head[24] == 16:
            return _check(path, _read_png16(path))
        from PIL import Image

        with Image.open(path) as im:
            if im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info:
                raise ImageError(path, "has an alpha channel; save it as RGB without alpha first")
            if im.mode in ("L", "I;16", "I;16B", "I", "1"):
                raise ImageError(path, "one channel (grayscale); the denoisers take three-channel sRGB")
            return _check(path, np.asarray(im.convert("RGB") if im.mode == "P" else im))
    except ImageError:
        raise
    except Exception as exc:  # every decoder's own error type
        raise ImageError(path, f"cannot be read as an image ({type(exc).__name__}: {exc})") from None


def write_image(path: str | Path, pixels: np.ndarray) -> None:
    """Write uint8 or uint16 (H, W, 3) ``pixels`` in the format of ``path``'s suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, pixels, photometric="rgb")
    elif suffix == ".png" and pixels.dtype == np.uint16:
        _write_png16(path, pixels)
    elif pixels.dtype != np.uint8:
        raise ImageError(path, f"{suffix} holds 8 bits per channel, got {pixels.dtype}")
    else:
        from PIL import Image

        kwargs = {"quality": 95} if suffix in (".jpg", ".jpeg") else {}
        Image.fromarray(pixels).save(path, **kwargs)


def quantize_uint8(x: np.ndarray) -> np.ndarray:
    """``floor(x + 0.5)`` clipped to [0, 255] as uint8; uint8 input is returned unchanged."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"expected a numeric array, got {x.dtype}")
    return np.clip(np.floor(x.astype(np.float64) + 0.5), 0, 255).astype(np.uint8)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit pixels as they are; 16-bit ones rounded to 8 bits (``x / 257``, half up)."""
    return quantize_uint8(to_model_range(pixels)) if pixels.dtype == np.uint16 else pixels


def to_model_range(pixels: np.ndarray) -> np.ndarray:
    """float32 in [0, 255], the range the networks were trained in (16 bits: divided by 257)."""
    x = pixels.astype(np.float32)
    return x / 257.0 if pixels.dtype == np.uint16 else x


def from_model_range(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to ``dtype``, rounded half up and clipped (8 bits: exactly as the metrics quantize)."""
    if np.dtype(dtype) == np.uint16:
        return np.clip(np.floor(x.astype(np.float64) * 257.0 + 0.5), 0, 65535).astype(np.uint16)
    return quantize_uint8(x)


# ------------------------------------------------------------------------------- 16-bit PNG


def _chunks(data: bytes, path: Path):
    """(type, body) of each chunk, its CRC checked (a flipped bit in the pixels is an error, not
    a silently different image)."""
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ImageError(path, f"truncated PNG ({kind!r} chunk at byte {pos} cut short)")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ImageError(path, f"corrupt PNG (CRC mismatch in the {kind!r} chunk at byte {pos})")
        yield kind, body
        pos += 12 + length


def _read_png16(path: Path) -> np.ndarray:
    """A 16-bit PNG: every chunk's CRC and the header checked here, the pixels decoded by libpng."""
    import imagecodecs

    data = path.read_bytes()
    ihdr, idat = None, False
    for kind, body in _chunks(data, path):
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat = True
        elif kind == b"tRNS":
            raise ImageError(path, "has an alpha channel; save it as RGB without alpha first")
    if ihdr is None or not idat:
        raise ImageError(path, "not a complete PNG (no IHDR or IDAT)")
    width, height, _, color, _, _, _ = ihdr
    if color not in (0, 2, 4, 6):
        raise ImageError(path, f"unsupported PNG color type {color}")
    try:
        pixels = imagecodecs.png_decode(data)
    except Exception as exc:  # libpng's message: a bad filter, short or long pixel data
        raise ImageError(path, f"corrupt PNG ({type(exc).__name__}: {exc})") from None
    if pixels.shape[:2] != (height, width) or pixels.dtype != np.uint16:
        shape = f"{pixels.dtype} {pixels.shape}"
        raise ImageError(path, f"PNG data does not match its header ({shape}; {height}x{width} 16-bit)")
    return pixels


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says: size, channels, bits per channel."""

    height: int
    width: int
    channels: int
    bits: int


def probe(path: str | Path) -> ImageInfo:
    """The header of an image file, checked without decoding its pixels: a PNG's every chunk CRC up
    to its end, a JPEG's end marker, a TIFF's pixel data inside the file. Raises :class:`ImageError`
    naming the file for anything :func:`read_image` would refuse (unreadable, truncated, corrupt,
    one channel, an alpha channel, not 8 or 16 bits)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ImageError(path, f"unsupported file type {suffix!r}; expected one of {list(SUFFIXES)}")
    try:
        info = _probe_tiff(path) if suffix in (".tif", ".tiff") else _probe_pillow(path, suffix)
    except ImageError:
        raise
    except Exception as exc:  # every decoder's own error type
        raise ImageError(path, f"cannot be read as an image ({type(exc).__name__}: {exc})") from None
    if info.channels == 1:
        raise ImageError(path, "one channel (grayscale); the denoisers take three-channel sRGB")
    if info.channels == 4 or info.channels == 2:
        raise ImageError(path, "has an alpha channel; save it as RGB without alpha first")
    if info.channels != 3 or info.bits not in (8, 16):
        raise ImageError(path, f"{info.channels} channels of {info.bits} bits; expected 3 of 8 or 16")
    return info


def _probe_pillow(path: Path, suffix: str) -> ImageInfo:
    from PIL import Image

    data = path.read_bytes()
    if suffix in (".jpg", ".jpeg") and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageError(path, "truncated JPEG (no end-of-image marker)")
    if suffix == ".png":
        if data[:8] != _PNG_SIG:
            raise ImageError(path, "not a PNG file (bad signature)")
        kinds = [kind for kind, _ in _chunks(data, path)]  # every CRC checked
        if b"IEND" not in kinds:
            raise ImageError(path, "truncated PNG (no IEND chunk)")
        if b"tRNS" in kinds:
            raise ImageError(path, "has an alpha channel; save it as RGB without alpha first")
        width, height, bits, color = struct.unpack(">IIBB", data[16:26])
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(color, 0)
        return ImageInfo(height, width, channels, 8 if color == 3 else bits)
    with Image.open(path) as im:
        mode, (width, height) = im.mode, im.size
    channels = {"L": 1, "1": 1, "I;16": 1, "RGB": 3, "YCbCr": 3, "RGBA": 4, "CMYK": 4, "LA": 2}.get(mode, 0)
    return ImageInfo(height, width, channels, 8)


def _probe_tiff(path: Path) -> ImageInfo:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        size = path.stat().st_size
        ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=True)]
        if not ends or max(ends) > size:
            raise ImageError(path, f"truncated TIFF (pixel data runs past byte {size})")
        shape = page.shape
        channels = shape[2] if len(shape) == 3 else 1
        return ImageInfo(shape[0], shape[1], channels, page.dtype.itemsize * 8)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and the CRC of type and body."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _write_png16(path: Path, pixels: np.ndarray) -> None:
    import imagecodecs

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(pixels, dtype=np.uint16), level=6))
    tmp.replace(path)
