"""The images the correlation job measures.

The ``rgb_pearson`` and ``pearson`` statistics measure the noise ``noisy - clean``: the pairs of
every source given that has clean images (``sidd``, ``pairs``); a source without them (``folder``,
``blocks``, ``dnd``) is refused in one line (exit status 2) that names the ``residual`` statistic.
``residual`` measures the noisy images alone: the training source's images, whatever its kind
(:func:`source_images`), as a study trains on them.

A SIDD root keeps its camera and ISO per pair (the per-camera and per-ISO maps); a ``pairs``
source has none, and its pairs count under camera ``-`` and ISO 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.config import ConfigError
from orchestrator.data.sidd import PairRecord
from orchestrator.data.sources import SOURCES, SourceSpec, evaluation_sources, one_index, training_source
from orchestrator.schema import CorrelationConfig

__all__ = ["PairSet", "source_pairs", "source_images", "sidd_row", "fingerprint"]


def fingerprint(noisy_path: str, clean_path: str) -> str:
    """Size and modification time of both files: a changed file is computed again on resume."""
    parts = []
    for p in (noisy_path, clean_path):
        try:
            st = os.stat(p)
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append("missing")
    return "|".join(parts)


@dataclass
class PairSet:
    """The input rows of every pair to measure, the files left out (with why), and names for people."""

    rows: list[dict] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    summaries: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(self.sources)


def sidd_row(rec: PairRecord, prefix: str = "") -> dict:
    """The input row of a SIDD pair: its metadata (camera, ISO...), paths and fingerprint."""
    row = rec.as_row() | {"key": prefix + rec.key, "camera_name": rec.info.camera_name}
    return row | {"fingerprint": fingerprint(rec.noisy_path, rec.clean_path)}


def _sidd_rows(spec: SourceSpec, cfg: CorrelationConfig, prefix: str, found: PairSet) -> None:
    index = SOURCES["sidd"].pairs(spec, cfg.data, cfg.strict)
    found.summaries.append(index.summary())
    found.problems += list(index.problems)
    found.rows += [sidd_row(rec, prefix) for rec in index.pairs]


def _pair_rows(spec: SourceSpec, cfg: CorrelationConfig, prefix: str, found: PairSet) -> None:
    pairs = SOURCES[spec.kind].pairs(spec, cfg.data, cfg.strict)
    found.summaries.append(f"{spec}: {len(pairs)} noisy/clean pairs")
    for p in pairs:
        noisy, clean = str(Path(p.noisy).resolve()), str(Path(p.clean).resolve())
        found.rows.append(
            {
                "key": prefix + p.key,
                "noisy_path": noisy,
                "clean_path": clean,
                "height": p.shape[0],
                "width": p.shape[1],
                "camera": "-",
                "camera_name": "-",
                "iso": 0,
                "fingerprint": fingerprint(noisy, clean),
            }
        )


def source_pairs(cfg: CorrelationConfig) -> PairSet:
    """Every pair of the training source and of each evaluation source named (``--train-data``,
    ``--eval-data``; SIDD at ``--data`` by default), keys prefixed by the source's name when there
    are several.

    Raises:
        ConfigError: a source has no clean images.
    """
    specs = [training_source(cfg.data)]
    specs += [s for s in (evaluation_sources(cfg.data) if cfg.data.eval else []) if str(s) != str(specs[0])]
    found = PairSet()
    with one_index():
        for spec in specs:
            if SOURCES[spec.kind].pairs is None:
                raise ConfigError(
                    "data",
                    f"{spec}: a {spec.kind!r} source has no clean images, so noisy - clean cannot be "
                    "measured; --statistic residual measures its noisy images alone, or give "
                    "noisy/clean pairs (a pairs or sidd source)",
                )
            prefix = f"{spec.name}:" if len(specs) > 1 else ""
            (_sidd_rows if spec.kind == "sidd" else _pair_rows)(spec, cfg, prefix, found)
            found.sources.append(str(spec) if spec.path else "synthetic")
    return found


def source_images(cfg: CorrelationConfig) -> PairSet:
    """The input rows of the ``residual`` statistic: every item of the training source (an image
    file, or a file of blocks), read as a study reads it; evaluation sources are not measured."""
    from orchestrator.data.sources import index_training

    with one_index():
        train = index_training(cfg.data)
    name = str(train.spec) if train.spec.path else "synthetic"
    found = PairSet(sources=[name], summaries=[train.summary()])
    for item in train.items:
        found.rows.append(
            {
                "key": item.key,
                "noisy_path": item.path,
                "clean_path": "",
                "reader": item.reader,
                "arg": item.arg,
                "height": item.shapes[0][0],
                "width": item.shapes[0][1],
                "camera": "-",
                "camera_name": "-",
                "iso": 0,
                "fingerprint": item.fingerprint or fingerprint(item.path, item.path),
            }
        )
    return found
