"""A small camera pipeline: sRGB <-> linear camera raw, Bayer mosaic, Poisson-Gaussian noise, demosaic.

Used by :mod:`orchestrator.data.synthetic` to make SIDD-like noisy/clean pairs. The unprocessing
follows the usual inverse of a camera ISP (sRGB transfer curve, colour correction, white balance,
mosaic); rendering runs the same steps forwards. Noise enters on the raw mosaic, so demosaicking,
white balance, the colour matrix, chroma smoothing and the transfer curve shape it into the
spatially correlated, signal- and channel-dependent noise of real sRGB photographs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CFA_PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")
DEMOSAIC_METHODS = ("bilinear", "malvar")


@dataclass(frozen=True)
class CameraProfile:
    """One camera's colour and noise behaviour.

    Args:
        code: two-letter SIDD camera code (GP, IP, S6, N6, G4).
        cam_to_rgb: 3x3 matrix from white-balanced camera RGB to linear sRGB (rows sum to 1).
        wb_gains: red and blue white-balance gains at 3200 K, 4400 K and 5500 K illuminants.
        cfa: Bayer phase, one of :data:`CFA_PATTERNS`.
        demosaic: one of :data:`DEMOSAIC_METHODS`.
        shot: Poisson gain at ISO 100 (variance per unit of normalized raw signal).
        read: Gaussian read-noise standard deviation at ISO 100 (normalized raw units).
        chroma_scale: scale (pixels) of the in-camera chroma noise reduction applied to the
            colour-difference channels; 0 disables it.
        chroma_shape: exponent of its separable kernel ``exp(-|n / scale|^shape)`` per axis:
            2 is a Gaussian; below 1 the kernel is a sharp peak with long, thin tails, as a
            blend of the unfiltered chroma with ever wider smoothings (multi-scale noise
            reduction) gives, and its product over the two axes reaches further along them
            than along the diagonals.
        isos: the ISO settings this camera is shot at.
    """

    code: str
    cam_to_rgb: tuple[tuple[float, float, float], ...]
    wb_gains: tuple[tuple[float, float], ...]
    cfa: str
    demosaic: str
    shot: float
    read: float
    chroma_scale: float
    chroma_shape: float
    isos: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.cfa not in CFA_PATTERNS:
            raise ValueError(f"camera {self.code}: cfa {self.cfa!r} not in {CFA_PATTERNS}")
        if self.demosaic not in DEMOSAIC_METHODS:
            raise ValueError(f"camera {self.code}: demosaic {self.demosaic!r} not in {DEMOSAIC_METHODS}")

    def noise_params(self, iso: float) -> tuple[float, float]:
        """(shot gain, read std) at an ISO: both scale with the analogue gain ISO/100."""
        g = iso / 100.0
        return self.shot * g, self.read * g


ILLUMINANTS = (3200, 4400, 5500)

# Five profiles named after SIDD's cameras. Matrices, gains and noise levels are plausible values
# of the same order as published smartphone calibrations, chosen to differ from one another;
# The chroma noise reduction and the demosaic method were calibrated so that the pooled
# noise-correlation map of the default mix approaches the real SIDD Medium map, its radius-4
# diamond included (docs/SYNTHETIC_DATA.md).
PROFILES: dict[str, CameraProfile] = {
    p.code: p
    for p in (
        CameraProfile(
            code="GP",
            cam_to_rgb=((1.71, -0.58, -0.13), (-0.20, 1.45, -0.25), (0.02, -0.55, 1.53)),
            wb_gains=((1.45, 2.55), (1.80, 1.95), (2.05, 1.62)),
            cfa="RGGB",
            demosaic="malvar",
            shot=1.75e-04,
            read=6.72e-04,
            chroma_scale=0.102,
            chroma_shape=0.5,
            isos=(100, 400, 800, 1600, 3200),
        ),
        CameraProfile(
            code="IP",
            cam_to_rgb=((1.62, -0.49, -0.13), (-0.16, 1.38, -0.22), (0.04, -0.45, 1.41)),
            wb_gains=((1.38, 2.70), (1.72, 2.05), (1.96, 1.70)),
            cfa="GRBG",
            demosaic="bilinear",
            shot=1.31e-04,
            read=4.48e-04,
            chroma_scale=0.11,
            chroma_shape=0.5,
            isos=(100, 200, 400, 800, 1600),
        ),
        CameraProfile(
            code="S6",
            cam_to_rgb=((1.85, -0.70, -0.15), (-0.24, 1.56, -0.32), (0.00, -0.62, 1.62)),
            wb_gains=((1.52, 2.40), (1.88, 1.86), (2.15, 1.55)),
            cfa="BGGR",
            demosaic="malvar",
            shot=2.28e-04,
            read=8.40e-04,
            chroma_scale=0.094,
            chroma_shape=0.5,
            isos=(100, 400, 800, 1600, 3200),
        ),
        CameraProfile(
            code="N6",
            cam_to_rgb=((1.55, -0.42, -0.13), (-0.28, 1.60, -0.32), (0.05, -0.70, 1.65)),
            wb_gains=((1.40, 2.62), (1.76, 2.00), (2.00, 1.66)),
            cfa="GBRG",
            demosaic="bilinear",
            shot=2.80e-04,
            read=1.12e-03,
            chroma_scale=0.11,
            chroma_shape=0.5,
            isos=(100, 200, 400, 800, 1600, 3200),
        ),
        CameraProfile(
            code="G4",
            cam_to_rgb=((1.78, -0.62, -0.16), (-0.18, 1.50, -0.32), (0.01, -0.50, 1.49)),
            wb_gains=((1.48, 2.48), (1.84, 1.90), (2.10, 1.58)),
            cfa="RGGB",
            demosaic="bilinear",
            shot=1.93e-04,
            read=5.60e-04,
            chroma_scale=0.11,
            chroma_shape=0.5,
            isos=(100, 200, 400, 800, 1600),
        ),
    )
}


# ------------------------------------------------------------------------------ transfer curve


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB transfer curve, inverted; x in [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """sRGB transfer curve; x in [0, 1] (clipped)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


# ------------------------------------------------------------------------------ mosaic


def cfa_channel_map(cfa: str, h: int, w: int) -> np.ndarray:
    """(H, W) int array: which channel (0 R, 1 G, 2 B) each photosite records."""
    lookup = {"R": 0, "G": 1, "B": 2}
    tile = np.array([[lookup[cfa[0]], lookup[cfa[1]]], [lookup[cfa[2]], lookup[cfa[3]]]])
    return np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]


def mosaic(rgb: np.ndarray, cfa: str) -> np.ndarray:
    """(H, W, 3) -> (H, W) Bayer mosaic."""
    ch = cfa_channel_map(cfa, *rgb.shape[:2])
    return np.take_along_axis(rgb, ch[..., None], axis=2)[..., 0]


_K_BILINEAR_RB = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 4
_K_BILINEAR_G = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], dtype=np.float64) / 4

# Malvar, He and Cutler (2004), gradient-corrected bilinear interpolation (kernels x 1/8).
_K_G_AT_RB = (
    np.array([[0, 0, -1, 0, 0], [0, 0, 2, 0, 0], [-1, 2, 4, 2, -1], [0, 0, 2, 0, 0], [0, 0, -1, 0, 0]]) / 8
)
_K_ROW = (
    np.array(  # colour at a green site whose row holds that colour
        [[0, 0, 0.5, 0, 0], [0, -1, 0, -1, 0], [-1, 4, 5, 4, -1], [0, -1, 0, -1, 0], [0, 0, 0.5, 0, 0]]
    )
    / 8
)
_K_COL = _K_ROW.T  # colour at a green site whose column holds that colour
_K_DIAG = (
    np.array(  # red at blue sites and blue at red sites
        [[0, 0, -1.5, 0, 0], [0, 2, 0, 2, 0], [-1.5, 0, 6, 0, -1.5], [0, 2, 0, 2, 0], [0, 0, -1.5, 0, 0]]
    )
    / 8
)


def _conv(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    return ndimage.convolve(x, k, mode="mirror")


def demosaic(raw: np.ndarray, cfa: str, method: str) -> np.ndarray:
    """(H, W) Bayer mosaic -> (H, W, 3) by ``bilinear`` or ``malvar`` interpolation."""
    h, w = raw.shape
    ch = cfa_channel_map(cfa, h, w)
    out = np.empty((h, w, 3), dtype=np.float64)
    if method == "bilinear":
        for c, k in ((0, _K_BILINEAR_RB), (1, _K_BILINEAR_G), (2, _K_BILINEAR_RB)):
            out[..., c] = _conv(np.where(ch == c, raw, 0.0), k)
        return out
    if method != "malvar":
        raise ValueError(f"unknown demosaic method {method!r}; expected one of {DEMOSAIC_METHODS}")
    # For each green site: does its row hold red (else blue)?
    row_has_red = np.broadcast_to((ch == 0).any(axis=1, keepdims=True), (h, w))
    green = ch == 1
    g_at_rb = _conv(raw, _K_G_AT_RB)
    by_row, by_col, by_diag = _conv(raw, _K_ROW), _conv(raw, _K_COL), _conv(raw, _K_DIAG)
    out[..., 1] = np.where(green, raw, g_at_rb)
    for c, other, row_has_c in ((0, 2, row_has_red), (2, 0, ~row_has_red)):
        at_green = np.where(row_has_c, by_row, by_col)
        out[..., c] = np.where(ch == c, raw, np.where(green, at_green, 0.0))
        out[..., c] = np.where(ch == other, by_diag, out[..., c])
    return out


# ------------------------------------------------------------------------------ pipeline


def white_balance_gains(profile: CameraProfile, illuminant: int) -> np.ndarray:
    """Per-channel gains (R, G, B) for an illuminant temperature in :data:`ILLUMINANTS`."""
    if illuminant not in ILLUMINANTS:
        raise ValueError(f"illuminant {illuminant} K not in {ILLUMINANTS}")
    r, b = profile.wb_gains[ILLUMINANTS.index(illuminant)]
    return np.array([r, 1.0, b])


def unprocess(srgb: np.ndarray, profile: CameraProfile, illuminant: int, exposure: float) -> np.ndarray:
    """uint8 or [0, 1] sRGB (H, W, 3) -> linear raw mosaic (H, W) in normalized units."""
    x = srgb.astype(np.float64) / 255.0 if srgb.dtype == np.uint8 else srgb.astype(np.float64)
    lin = srgb_to_linear(x)
    cam = lin @ np.linalg.inv(np.asarray(profile.cam_to_rgb)).T
    cam = np.clip(cam, 0.0, None) / white_balance_gains(profile, illuminant) * exposure
    return mosaic(cam, profile.cfa)


def add_noise(raw: np.ndarray, profile: CameraProfile, iso: float, rng: np.random.Generator) -> np.ndarray:
    """Signal-dependent Poisson-Gaussian noise: K * Poisson(raw / K) + N(0, read^2)."""
    shot, read = profile.noise_params(iso)
    photons = rng.poisson(np.clip(raw, 0.0, None) / shot)
    return photons * shot + rng.normal(0.0, read, size=raw.shape)


def chroma_kernel(scale: float, shape: float) -> np.ndarray:
    """The normalized 1-D kernel ``exp(-|n / scale|^shape)``, cut where it falls below 1e-4."""
    radius = min(16, max(1, int(np.ceil(scale * np.log(1e4) ** (1.0 / shape)))))
    n = np.arange(-radius, radius + 1)
    k = np.exp(-(np.abs(n / scale) ** shape))
    return k / k.sum()


def _chroma_smooth(rgb: np.ndarray, scale: float, shape: float) -> np.ndarray:
    """Smooth the colour differences from luma with a separable :func:`chroma_kernel`."""
    if scale <= 0:
        return rgb
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    k = chroma_kernel(scale, shape)
    diff = ndimage.correlate1d(rgb - luma[..., None], k, axis=0, mode="mirror")
    diff = ndimage.correlate1d(diff, k, axis=1, mode="mirror")
    return luma[..., None] + diff


def render(raw: np.ndarray, profile: CameraProfile, illuminant: int, exposure: float) -> np.ndarray:
    """Linear raw mosaic -> uint8 sRGB: demosaic, white balance, colour matrix, chroma NR, curve."""
    cam = demosaic(raw, profile.cfa, profile.demosaic)
    cam = cam * white_balance_gains(profile, illuminant) / exposure
    lin = cam @ np.asarray(profile.cam_to_rgb).T
    lin = _chroma_smooth(np.clip(lin, 0.0, 1.0), profile.chroma_scale, profile.chroma_shape)
    return np.clip(np.floor(linear_to_srgb(lin) * 255.0 + 0.5), 0, 255).astype(np.uint8)


def capture(
    srgb: np.ndarray,
    profile: CameraProfile,
    *,
    iso: float,
    illuminant: int,
    exposure: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Shoot a clean sRGB scene with a camera: returns (noisy, clean) uint8 sRGB.

    The clean target is the same raw rendered without noise, so both share every pipeline
    artefact except the noise.
    """
    raw = unprocess(srgb, profile, illuminant, exposure)
    clean = render(raw, profile, illuminant, exposure)
    noisy = render(add_noise(raw, profile, iso, rng), profile, illuminant, exposure)
    return noisy, clean
