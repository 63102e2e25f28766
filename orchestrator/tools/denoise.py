"""Denoise a file or a folder of sRGB images with any checkpoint (``jobs/denoise.py``).

Each image is read at its bit depth (PNG, JPEG, TIFF; 8 or 16 bits), brought to the networks'
0..255 range, denoised whole or in tiles (:mod:`orchestrator.tools.tiling`), and written under the
output folder with the same name and format and bit depth. A file that cannot be used is skipped
with its reason, and the run goes on; the summary lists every skipped file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from orchestrator.progress import Progress
from orchestrator.schema import DenoiseConfig
from orchestrator.tools.images import (
    SUFFIXES,
    ImageError,
    from_model_range,
    read_image,
    to_model_range,
    write_image,
)
from orchestrator.tools.tiling import activation_bytes_per_pixel, denoise_image, tile_for_memory
from orchestrator.train.evaluation import device_for

__all__ = ["DenoiseSummary", "collect_inputs", "denoise_files"]


@dataclass
class DenoiseSummary:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    tile: int = 0


def collect_inputs(target: str | Path) -> list[Path]:
    """A file, or every image file directly in a folder (sorted).

    Raises:
        ImageError: nothing there, or a folder without PNG, JPEG or TIFF files.
    """
    p = Path(target).expanduser()
    if p.is_dir():
        found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        if not found:
            raise ImageError(target, "no PNG, JPEG or TIFF files in it")
        return found
    if p.exists():
        return [p]
    raise ImageError(target, "no such file or folder")


def denoise_files(
    model: torch.nn.Module, files: list[Path], out: Path, opts: DenoiseConfig, *, progress: bool = True
) -> DenoiseSummary:
    device = device_for(opts.device)
    model = model.to(device).eval()
    tile = opts.tile
    if tile <= 0 and opts.memory_mb > 0:
        tile = tile_for_memory(activation_bytes_per_pixel(model, device), opts.memory_mb, opts.margin)
    summary = DenoiseSummary(tile=tile)
    t0 = time.perf_counter()
    for n, f in enumerate(files, 1):
        try:
            pixels = read_image(f)
        except ImageError as exc:
            summary.skipped.append((str(f), exc.reason))
            print(f"skipped {f}: {exc.reason}", flush=True)
            continue
        h, w = pixels.shape[:2]
        bar = Progress(f"{n}/{len(files)} {f.name} {w}x{h}", 1, every_s=5.0) if progress else None

        def step(done: int, total: int, _bar=bar) -> None:
            if _bar:
                _bar.total = total
                _bar.update()

        torch.manual_seed(opts.seed)  # R3's random masks: the same output on every run
        x = to_model_range(pixels)
        y = denoise_image(
            model, x, tile=tile, margin=opts.margin, blend=opts.blend, device=device, on_tile=step
        )
        dst = out / f.name
        write_image(dst, from_model_range(y, pixels.dtype))
        summary.written.append(dst)
    summary.seconds = time.perf_counter() - t0
    return summary
