"""SIDD-like synthetic data, written in SIDD's own layout and formats.

Clean scenes come from the photographs bundled with scikit-image and from procedural textures
(flat regions with edges, gratings, checkerboards, strokes, fractal clouds). Each scene is shot by
one of the camera profiles in :mod:`orchestrator.data.camera` at an ISO, illuminant and brightness
drawn from the seed: unprocessed to raw, given Poisson-Gaussian noise, demosaicked and rendered
back to sRGB. The output tree is read by :mod:`orchestrator.data.sidd` exactly like a real download.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from orchestrator.data import camera
from orchestrator.data.files import save_blocks, write_png
from orchestrator.data.sidd import (
    BENCHMARK_NOISY,
    MEDIUM_DIR,
    VALIDATION_GT,
    VALIDATION_NOISY,
    SceneInfo,
    format_scene_name,
)
from orchestrator.schema import SyntheticSpec

log = logging.getLogger(__name__)

PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
)
BRIGHTNESS_EXPOSURE = {"L": 0.5, "N": 0.75, "H": 0.95}
SHUTTERS = (30, 60, 100, 200, 400)


# ------------------------------------------------------------------------------ clean scenes


def _load_photos() -> list[np.ndarray]:
    import skimage.data

    photos = []
    for name in PHOTOS:
        try:
            img = getattr(skimage.data, name)()
        except Exception:  # some skimage builds need an optional download for a few images
            log.debug("skimage.data.%s unavailable; skipped", name)
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            photos.append(np.ascontiguousarray(img[..., :3]))
    return photos


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, (h, w), order=3, anti_aliasing=True, preserve_range=True)


def photo_scene(rng: np.random.Generator, h: int, w: int, photos: list[np.ndarray]) -> np.ndarray:
    """A random crop of a bundled photograph at a random scale, flipped or transposed."""
    img = photos[rng.integers(len(photos))].astype(np.float64) / 255.0
    if rng.random() < 0.5:
        img = img.transpose(1, 0, 2)
    ph, pw = img.shape[:2]
    scale = max(h / ph, w / pw) * rng.uniform(1.0, 1.8)
    big = _resize(img, max(h, int(round(ph * scale))), max(w, int(round(pw * scale))))
    y = rng.integers(big.shape[0] - h + 1)
    x = rng.integers(big.shape[1] - w + 1)
    out = big[y : y + h, x : x + w]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.clip(out, 0.0, 1.0)


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.05, 0.95, size=3)


def _shapes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.broadcast_to(_colour(rng), (h, w, 3)).copy()
    for _ in range(rng.integers(6, 16)):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(0.05, 0.35) * h, rng.uniform(0.05, 0.35) * w
        inside = (
            ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
            if rng.random() < 0.5
            else (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
        )
        img[inside] = _colour(rng)
    return img


def _grating(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    theta, period = rng.uniform(0, np.pi), rng.uniform(3, 40)
    phase = (xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period
    wave = 0.5 + 0.5 * np.sin(phase)
    a, b = _colour(rng), _colour(rng)
    return a * wave[..., None] + b * (1 - wave[..., None])


def _checker(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    cell = int(rng.integers(4, 48))
    yy, xx = np.mgrid[0:h, 0:w]
    mask = ((yy // cell + xx // cell) % 2).astype(bool)
    img = np.empty((h, w, 3))
    img[mask], img[~mask] = _colour(rng), _colour(rng)
    return img


def _clouds(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.zeros((h, w, 3))
    for octave in range(5):
        sigma = 2.0 ** (5 - octave)
        layer = ndimage.gaussian_filter(rng.normal(size=(h, w, 3)), sigma=(sigma, sigma, 0))
        img += layer / (layer.std() + 1e-9) * 0.5**octave
    img = (img - img.min()) / (np.ptp(img) + 1e-9)
    return 0.1 + 0.8 * img


def _strokes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.broadcast_to(rng.uniform(0.6, 0.95, size=3), (h, w, 3)).copy()
    ink = rng.uniform(0.02, 0.3, size=3)
    for _ in range(rng.integers(20, 60)):
        y0, x0 = rng.integers(h), rng.integers(w)
        length = int(rng.integers(5, max(6, min(h, w) // 3)))
        thick = int(rng.integers(1, 4))
        if rng.random() < 0.5:
            img[y0 : y0 + thick, x0 : x0 + length] = ink
        else:
            img[y0 : y0 + length, x0 : x0 + thick] = ink
    return img


TEXTURES: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "shapes": _shapes,
    "grating": _grating,
    "checker": _checker,
    "clouds": _clouds,
    "strokes": _strokes,
}


def clean_scene(
    rng: np.random.Generator, h: int, w: int, photos: list[np.ndarray], *, zoom: float = 1.0
) -> np.ndarray:
    """A clean sRGB scene in [0, 1], (H, W, 3): a photograph half the time, else a texture.
    ``zoom`` > 1 draws it at 1/zoom the size and enlarges it: content as smooth per pixel as a
    12 MP phone frame's."""
    if zoom != 1.0:
        small = clean_scene(rng, max(8, round(h / zoom)), max(8, round(w / zoom)), photos)
        return np.clip(_resize(small, h, w), 0.0, 1.0)
    if photos and rng.random() < 0.5:
        return _tame(photo_scene(rng, h, w, photos))
    name = list(TEXTURES)[rng.integers(len(TEXTURES))]
    # Soften procedural edges a little, as optics would.
    img = ndimage.gaussian_filter(TEXTURES[name](rng, h, w), sigma=(0.6, 0.6, 0))
    return _tame(np.clip(img, 0.0, 1.0))


def _tame(img: np.ndarray) -> np.ndarray:
    """Keep a scene inside what the cameras render without clipping: a black pedestal, a little
    headroom and slightly reduced saturation. Clipped channels carry no noise and would add a
    structured, image-dependent term to the noise statistics that real SIDD scenes mostly lack."""
    luma = img @ np.array([0.299, 0.587, 0.114])
    img = 0.8 * img + 0.2 * luma[..., None]
    return 0.04 + 0.88 * img


# ------------------------------------------------------------------------------ shooting


def draw_conditions(rng: np.random.Generator, cameras: tuple[str, ...], code: str | None = None) -> dict:
    """Camera (drawn unless given), ISO, illuminant, brightness and shutter of one shot."""
    code = code or cameras[rng.integers(len(cameras))]
    prof = camera.PROFILES[code]
    brightness = "LNH"[rng.integers(3)]
    # Darker scenes are shot at higher ISO, as the phones' auto-exposure does.
    isos = sorted(prof.isos)
    lo = {"L": len(isos) // 2, "N": 1, "H": 0}[brightness]
    iso = int(isos[rng.integers(lo, len(isos))])
    return {
        "camera": code,
        "iso": iso,
        "illuminant": int(camera.ILLUMINANTS[rng.integers(len(camera.ILLUMINANTS))]),
        "brightness": brightness,
        "shutter": int(SHUTTERS[rng.integers(len(SHUTTERS))]),
    }


def shoot(
    rng: np.random.Generator, scene: np.ndarray, cond: dict, *, noise_gain: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, clean) uint8 sRGB of ``scene`` under the drawn conditions."""
    return camera.capture(
        scene,
        camera.PROFILES[cond["camera"]],
        iso=cond["iso"] * noise_gain,
        illuminant=cond["illuminant"],
        exposure=BRIGHTNESS_EXPOSURE[cond["brightness"]],
        rng=rng,
    )


def _blocks(
    rng: np.random.Generator, spec: SyntheticSpec, n_images: int, n_blocks: int, photos: list
) -> tuple[np.ndarray, np.ndarray]:
    bs = spec.block_size
    noisy = np.empty((n_images, n_blocks, bs, bs, 3), dtype=np.uint8)
    clean = np.empty_like(noisy)
    side = max(bs * 3, 96)
    for i in range(n_images):
        scene = clean_scene(rng, side, side, photos, zoom=spec.zoom)
        n, c = shoot(rng, scene, draw_conditions(rng, spec.cameras), noise_gain=spec.noise_gain)
        for b in range(n_blocks):
            y, x = rng.integers(side - bs + 1), rng.integers(side - bs + 1)
            noisy[i, b], clean[i, b] = n[y : y + bs, x : x + bs], c[y : y + bs, x : x + bs]
    return noisy, clean


def generate(out: str | Path, spec: SyntheticSpec | None = None, *, progress: bool = False) -> Path:
    """Write a SIDD-like tree under ``out`` and return ``out``.

    Medium scenes, validation blocks and benchmark blocks use independent random streams derived
    from ``spec.seed``, so changing one count leaves the others' content unchanged.
    """
    spec = spec or SyntheticSpec()
    out = Path(out)
    photos = _load_photos()
    h, w = spec.size
    seeds = np.random.SeedSequence(spec.seed).spawn(3)
    rng = np.random.default_rng(seeds[0])
    for i in range(spec.scenes):
        # Cameras in turn, so that every profile is represented even in a small tree.
        cond = draw_conditions(rng, spec.cameras, spec.cameras[i % len(spec.cameras)])
        info = SceneInfo(
            instance=i + 1,
            scene=int(rng.integers(1, 11)),
            camera=cond["camera"],
            iso=cond["iso"],
            shutter=cond["shutter"],
            illuminant=cond["illuminant"],
            brightness=cond["brightness"],
        )
        folder = out / MEDIUM_DIR / format_scene_name(info)
        scene = clean_scene(rng, h, w, photos, zoom=spec.zoom)
        # SIDD Medium holds two frames per scene instance (010, 011): two noise realizations.
        for frame in ("010", "011"):
            noisy, clean = shoot(rng, scene, cond, noise_gain=spec.noise_gain)
            write_png(folder / f"{info.instance:04d}_NOISY_SRGB_{frame}.PNG", noisy)
            write_png(folder / f"{info.instance:04d}_GT_SRGB_{frame}.PNG", clean)
        if progress:
            print(f"  scene {i + 1}/{spec.scenes}: {folder.name}", flush=True)
    vnoisy, vclean = _blocks(np.random.default_rng(seeds[1]), spec, spec.val_images, spec.val_blocks, photos)
    save_blocks(out / VALIDATION_NOISY, VALIDATION_NOISY.stem, vnoisy)
    save_blocks(out / VALIDATION_GT, VALIDATION_GT.stem, vclean)
    if spec.bench_images > 0 and spec.bench_blocks > 0:
        bnoisy, _ = _blocks(
            np.random.default_rng(seeds[2]), spec, spec.bench_images, spec.bench_blocks, photos
        )
        save_blocks(out / BENCHMARK_NOISY, BENCHMARK_NOISY.stem, bnoisy)
    if progress:
        print(f"  validation {vnoisy.shape}, benchmark written to {out}", flush=True)
    return out
