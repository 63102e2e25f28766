"""Intervals and paired comparisons: what the table calls significant, and what it does not."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.config import ConfigError
from orchestrator.data.sources import EvalSet, SourceSpec
from orchestrator.study.render import to_markdown
from orchestrator.study.report import row_numbers
from orchestrator.train.uncertainty import bootstrap, paired

IMAGES, PER_IMAGE = 40, 32  # SIDD's validation set: 40 images of 32 blocks


def _blocks(rng, *, image_sd=1.0, block_sd=0.5, base=35.0):
    """Per-block PSNRs of one method: an image effect shared by the image's blocks, and noise."""
    image = np.repeat(np.arange(IMAGES), PER_IMAGE)
    effect = rng.normal(0, image_sd, IMAGES)[image]
    return base + effect + rng.normal(0, block_sd, len(image)), image, effect


def test_a_difference_smaller_than_the_noise_is_not_called_significant():
    rng = np.random.default_rng(0)
    original, image, effect = _blocks(rng)
    # the ablation: the same images, 0.01 dB better on average, with per-image noise of 0.3 dB
    variant = original + 0.01 + rng.normal(0, 0.3, IMAGES)[image]
    row = row_numbers(variant[None], variant[None] / 40, image, 2000, original[None])
    assert row["delta_ci_low"] < 0 < row["delta_ci_high"] and row["delta_significant"] is False
    table = [{"ablation": "L-1", "eval_source": "sidd", "status": "finished", **row}]
    assert "*" not in to_markdown(table).splitlines()[2]


def test_a_clear_difference_is_called_significant():
    rng = np.random.default_rng(1)
    original, image, _ = _blocks(rng)
    variant = original - 0.25 + rng.normal(0, 0.05, IMAGES)[image]
    row = row_numbers(variant[None], variant[None] / 40, image, 2000, original[None])
    assert row["delta_ci_high"] < 0 and row["delta_significant"] is True
    assert row["delta_psnr_vs_original"] == pytest.approx(variant.mean() - original.mean())
    table = [{"ablation": "L-1", "eval_source": "sidd", "status": "finished", **row}]
    assert " *" in to_markdown(table).splitlines()[2]


def test_the_interval_resamples_images_not_blocks():
    """Blocks of one image move together: an interval over 1280 'independent' blocks would be
    several times too narrow; the image-level one covers the spread of the image effects."""
    rng = np.random.default_rng(2)
    values, image, _ = _blocks(rng, image_sd=1.0, block_sd=0.1)
    ci = bootstrap(values, image)
    as_blocks = bootstrap(values, np.arange(len(values)))
    assert (ci.high - ci.low) > 4 * (as_blocks.high - as_blocks.low)
    assert ci.low < values.mean() < ci.high
    assert bootstrap(values, image) == ci  # seeded: the same numbers give the same interval


def test_seeds_widen_the_interval_and_give_a_std():
    rng = np.random.default_rng(3)
    values, image, _ = _blocks(rng, image_sd=0.2, block_sd=0.1)
    seeds = np.stack([values + s for s in (-0.3, 0.0, 0.3)])
    one, three = bootstrap(values, image), bootstrap(seeds, image)
    assert three.std == pytest.approx(0.3) and one.std == 0.0
    assert (three.high - three.low) > (one.high - one.low)
    assert paired(seeds, values, image).mean == pytest.approx(0.0, abs=1e-9)


def test_a_single_image_gives_no_interval_rather_than_a_zero_wide_one():
    values = np.array([30.0, 31.0, 32.0])
    ci = bootstrap(values, np.zeros(3, int))
    assert not ci.defined and not paired(values, values - 1, np.zeros(3, int)).excludes_zero
    row = row_numbers(values[None], values[None] / 40, np.zeros(3, int), 200, (values - 1)[None])
    assert row["psnr_ci_low"] is None and row["delta_significant"] is False
    table = [{"ablation": "x", "eval_source": "own", "status": "finished", **row}]
    assert "no interval: one image" in to_markdown(table)


def _source(images: list[int]) -> EvalSet:
    z = np.zeros((len(images), 8, 8, 3), np.uint8)
    return EvalSet("own", SourceSpec("pairs", "/data/own", "own"), z, z, np.asarray(images))


def test_the_selection_subset_is_whole_images_by_rank():
    src = _source([5, 5, 7, 7, 9, 9, 11, 11, 13])  # five images, ids not from 0
    sel, rep = src.split(2)
    assert set(src.image[sel]) == {5, 9, 13} and set(src.image[rep]) == {7, 11}
    assert sorted([*sel, *rep]) == list(range(9)) and not set(src.image[sel]) & set(src.image[rep])
    assert src.split(0)[0].size == 0 and len(src.split(0)[1]) == 9
    with pytest.raises(ConfigError, match=r"eval.select.*'own'.*1 image"):
        _source([3, 3]).split(4)
