"""Denoise a file, a folder of sRGB images or a data source with any checkpoint (``jobs/denoise.py``).

Each image is read at its bit depth (PNG, JPEG, TIFF; 8 or 16 bits), brought to the networks'
0..255 range, denoised whole or in tiles (:mod:`orchestrator.tools.tiling`), and written under the
output folder with the same name and format and bit depth. A file that cannot be used is skipped
with its reason, and the run goes on; the summary lists every skipped file. A data source given
as ``SOURCE:PATH`` is denoised into its submission layout (:func:`denoise_source`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from orchestrator.data.files import DatasetError
from orchestrator.data.images import (
    SUFFIXES,
    ImageError,
    from_model_range,
    read_image,
    to_model_range,
    write_image,
)
from orchestrator.data.sources import SourceSpec
from orchestrator.progress import Progress
from orchestrator.schema import DataConfig, DenoiseConfig
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
    model: torch.nn.Module,
    files: list[Path],
    out: Path,
    opts: DenoiseConfig,
    *,
    names: list[str] | None = None,
    progress: bool = True,
) -> DenoiseSummary:
    """Each of ``files`` denoised into ``out`` under its name (or ``names``, paths relative to
    ``out``), in its format and bit depth; a file that cannot be read is skipped with its reason."""
    names = names or [f.name for f in files]
    device = device_for(opts.device)
    model = model.to(device).eval()
    tile = opts.tile
    if tile <= 0 and opts.memory_mb > 0:
        tile = tile_for_memory(activation_bytes_per_pixel(model, device), opts.memory_mb, opts.margin)
    summary = DenoiseSummary(tile=tile)
    t0 = time.perf_counter()
    for n, (f, name) in enumerate(zip(files, names, strict=True), 1):
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
        dst = out / name
        write_image(dst, from_model_range(y, pixels.dtype))
        summary.written.append(dst)
    summary.seconds = time.perf_counter() - t0
    return summary


def denoise_source(
    model: torch.nn.Module, spec: SourceSpec, data: DataConfig, out: Path, opts: DenoiseConfig
) -> DenoiseSummary:
    """Denoise a data source into what its users submit or keep.

    ``folder`` and ``pairs`` (the noisy half): every image, written under ``out`` by its path in
    the source. ``blocks`` and ``sidd`` (its benchmark blocks): ``out/SubmitSrgb.mat`` for the SIDD
    server. ``dnd``: every bounding box into DND's submission layout, ``out/bundled/`` to upload.
    """
    from orchestrator.data.sources import index_training

    if spec.kind in ("folder", "pairs"):
        items = index_training(data, spec).items
        return denoise_files(model, [Path(i.path) for i in items], out, opts, names=[i.key for i in items])
    t0 = time.perf_counter()
    device = device_for(opts.device)
    model = model.to(device).eval()
    if spec.kind == "dnd":
        from orchestrator.data.dnd import write_dnd_submission

        def one(crop):  # float [0, 1] in and out, whole crop (DND's are 512 px)
            torch.manual_seed(opts.seed)
            return denoise_image(model, crop * 255.0, device=device) / 255.0

        written = write_dnd_submission(Path(spec.path).expanduser(), out, one)
    else:
        written = _blocks_submission(model, spec, data, out, opts)
    return DenoiseSummary(written=[written], seconds=time.perf_counter() - t0)


def _blocks_submission(model, spec: SourceSpec, data: DataConfig, out: Path, opts: DenoiseConfig) -> Path:
    """The blocks of a ``blocks`` source, or of a SIDD root's benchmark, into ``SubmitSrgb.mat``."""
    from orchestrator.data.blocks import blocks_file, read_blocks, write_submission
    from orchestrator.train.evaluation import score_batch

    if spec.kind == "sidd":
        from orchestrator.data.dataset import resolve as resolve_sidd
        from orchestrator.data.sidd import BENCHMARK_NOISY

        index = resolve_sidd(data, path=spec.path)
        if index.benchmark is None:
            raise DatasetError([(Path(index.root) / BENCHMARK_NOISY, "benchmark blocks not present")])
        path, variable = Path(index.benchmark.noisy_path), BENCHMARK_NOISY.stem
    else:
        path, variable = blocks_file(spec, data)
    blocks = read_blocks(path, variable)
    flat = blocks.reshape(-1, *blocks.shape[-3:])
    t0, denoised = time.perf_counter(), []
    bar = Progress(f"denoise {len(flat)} blocks", len(flat), every_s=5.0)
    for start in range(0, len(flat), 8):
        index = np.arange(start, min(start + 8, len(flat)))
        denoised.append(score_batch(model, flat[index], None, index, seed=opts.seed)["denoised"])
        bar.update(len(index))
    per_mp = (time.perf_counter() - t0) / (flat.shape[0] * flat.shape[1] * flat.shape[2] / 1e6)
    result = np.concatenate(denoised).reshape(blocks.shape)
    optional = {"MethodName": opts.method_name or str(spec), "Source": str(spec)}
    return write_submission(out / "SubmitSrgb.mat", result, per_mp, optional)
