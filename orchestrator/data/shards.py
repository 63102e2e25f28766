"""Patch shards: the noisy training images cut once into overlapping tiles, stored as Parquet.

Ray Data cuts the training items in parallel (one task per item of the training source, a file or
an array of blocks, decoding it and writing one Parquet file of tiles); trials then read tiles by
index with pyarrow and draw their crops from them. The shards are keyed by the training source's
content key and the cut (tile side and stride), so every stage of a study, and every later job on
the same data, reads the same shards. Tiles follow AP-BSN's and
LG-BPN's preparation of SIDD Medium: 512 px squares at stride 384, the last one flush with the
image edge; an image smaller than a tile is one tile.

Layout of a shard folder::

    manifest.json          written last: the cut, and per file its item and tile shapes
    part-00000.parquet     one item: a row (= one row group) per tile: pair, y, x, h, w, pixels
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.cluster import quiet_ray_data
from orchestrator.data.sources import TrainItem, read_item
from orchestrator.errors import RunFailure
from orchestrator.progress import Progress

__all__ = ["tile_origins", "shard_dir", "build_shards", "TileSet", "ShardError"]

FORMAT = 1
MANIFEST = "manifest.json"


class ShardError(RunFailure):
    """A shard folder is missing, incomplete, or unreadable."""


def tile_origins(length: int, *, tile: int, stride: int) -> list[int]:
    """Start offsets of the tiles covering ``length`` pixels; the last tile ends at the edge."""
    if length <= tile:
        return [0]
    n = -(-(length - tile) // stride) + 1
    return [min(i * stride, length - tile) for i in range(n)]


def shard_dir(root: str | Path, data_key: str, *, tile: int, stride: int) -> Path:
    """Where the shards of (data, cut) live under ``root``."""
    digest = hashlib.sha256(f"{data_key}:{tile}:{stride}:{FORMAT}".encode()).hexdigest()[:16]
    return Path(root) / f"tiles{tile}s{stride}-{digest}"


def _cut_item(row: dict, *, tile: int, stride: int, folder: str) -> dict:
    """Ray Data task: read one training item, write the tiles of its images to ``part-<n>.parquet``."""
    item = TrainItem(**json.loads(row["item"]))
    images = read_item(item)
    records = []
    for j, img in enumerate(images):
        name = item.key if len(images) == 1 else f"{item.key}#{j}"
        h, w = img.shape[:2]
        for y in tile_origins(h, tile=tile, stride=stride):
            for x in tile_origins(w, tile=tile, stride=stride):
                t = np.ascontiguousarray(img[y : y + tile, x : x + tile])
                records.append(
                    {"pair": name, "y": y, "x": x, "h": t.shape[0], "w": t.shape[1], "pixels": t.tobytes()}
                )
    path = Path(folder) / f"part-{int(row['n']):05d}.parquet"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(pa.Table.from_pylist(records), tmp, row_group_size=1, compression="none")
    os.replace(tmp, path)
    return {
        "n": int(row["n"]),
        "file": path.name,
        "pair": item.key,
        "shapes": [[r["h"], r["w"]] for r in records],
    }


def build_shards(
    items: Sequence[TrainItem],
    out: Path,
    *,
    tile: int,
    stride: int,
    resources: dict | None = None,
    progress: bool = True,
) -> Path:
    """Cut every training item into tiles with Ray Data (skipped if ``out`` is complete).

    The manifest is written only when every part is, so an interrupted cut is never mistaken for a
    finished one; parts already written are kept and not cut again.
    """
    import ray

    if (out / MANIFEST).is_file():
        return out
    if tile < 1 or stride < 1:
        raise ValueError(f"train.epoch_tile and train.epoch_stride must be >= 1, got {tile} and {stride}")
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"n": i, "key": it.key, "item": json.dumps(asdict(it))} for i, it in enumerate(items)]
    todo = [r for r in rows if not (out / f"part-{r['n']:05d}.parquet").is_file()]
    done = {r["n"]: _describe(out, r["n"], r["key"]) for r in rows if r not in todo}
    bar = Progress(f"cut {len(rows)} training files into {tile}px tiles", len(rows)) if progress else None
    if bar:
        bar.done = len(done)
    if todo:
        quiet_ray_data()
        cpus = int((resources or ray.cluster_resources()).get("CPU", 1)) or 1
        ds = ray.data.from_items(todo, override_num_blocks=len(todo)).map(
            _cut_item,
            fn_kwargs={"tile": tile, "stride": stride, "folder": str(out)},
            num_cpus=1,
            compute=ray.data.TaskPoolStrategy(size=max(1, min(cpus, len(todo)))),
        )
        for row in ds.iter_rows():
            done[int(row["n"])] = {"file": row["file"], "pair": row["pair"], "shapes": list(row["shapes"])}
            if bar:
                bar.update()
    manifest = {
        "format": FORMAT,
        "tile": tile,
        "stride": stride,
        "parts": [done[i] for i in sorted(done)],
        "created": time.time(),
    }
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, out / MANIFEST)
    return out


def _describe(out: Path, n: int, key: str) -> dict:
    path = out / f"part-{n:05d}.parquet"
    table = pq.read_table(path, columns=["h", "w"])
    shapes = [[int(h), int(w)] for h, w in zip(table["h"].to_pylist(), table["w"].to_pylist(), strict=True)]
    return {"file": path.name, "pair": key, "shapes": shapes}


class TileSet(Sequence):
    """The tiles of a shard folder as a read-only sequence of uint8 (h, w, 3) arrays.

    Tiles are read on demand (one Parquet row group each) and kept in an LRU cache of at most
    ``cache_bytes``, so a trial holds only what it samples from, never the whole dataset.
    """

    def __init__(self, folder: str | Path, *, cache_bytes: int = 1 << 30):
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        if not path.is_file():
            raise ShardError(f"{self.folder} holds no finished patch shards (no {MANIFEST})")
        manifest = json.loads(path.read_text())
        self.tile, self.stride = manifest["tile"], manifest["stride"]
        self._where: list[tuple[str, int]] = []
        self.shapes: list[tuple[int, int]] = []
        self.names: list[str] = []
        for part in manifest["parts"]:
            for i, (h, w) in enumerate(part["shapes"]):
                self._where.append((part["file"], i))
                self.shapes.append((h, w))
                self.names.append(f"{part['pair']} tile {i}")
        self.cache_bytes = cache_bytes
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._held = 0
        self._files: dict[str, pq.ParquetFile] = {}

    def __len__(self) -> int:
        return len(self._where)

    def __getitem__(self, i: int) -> np.ndarray:  # type: ignore[override]
        if i < 0:
            i += len(self)
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            return hit
        file, group = self._where[i]
        try:
            pf = self._files.get(file) or self._files.setdefault(file, pq.ParquetFile(self.folder / file))
            row = pf.read_row_group(group, columns=["h", "w", "pixels"]).to_pylist()[0]
        except (OSError, pa.ArrowException) as exc:
            raise ShardError(f"cannot read tile {group} of {self.folder / file} ({exc})") from exc
        tile = np.frombuffer(row["pixels"], np.uint8).reshape(row["h"], row["w"], 3)
        self._cache[i] = tile
        self._held += tile.nbytes
        while self._held > self.cache_bytes and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._held -= old.nbytes
        return tile
