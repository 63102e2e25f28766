"""The data sources: each layout indexed and read, the options of each, and the stage-key rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from orchestrator.config import ConfigError
from orchestrator.data.crops import load_images
from orchestrator.data.files import DatasetError, read_png
from orchestrator.data.sidd import index_sidd
from orchestrator.data.sources import index_data, index_training, parse_source, read_item
from orchestrator.schema import DataConfig, FolderOptions, PairsOptions
from orchestrator.study.catalogue import load_profile
from orchestrator.study.plan import plan
from tests import layouts


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return layouts.sidd_tree(tmp_path_factory.mktemp("sidd"))


def test_source_names_are_checked():
    assert parse_source("polyu=pairs:/data/PolyU", key="k") == parse_source(
        "polyu=pairs:/data/PolyU", key="k"
    )
    spec = parse_source("pairs:/data/x", key="k")
    assert (spec.kind, spec.path, spec.name) == ("pairs", "/data/x", "pairs")
    with pytest.raises(
        ConfigError, match=r"'data.eval\[0\]'.*SOURCE one of \['blocks', 'dnd', 'folder', 'pairs'"
    ):
        parse_source("jpegs:/x", key="data.eval[0]")


def test_folder_reads_every_format_and_never_a_clean_image(tree, tmp_path):
    photos = layouts.noisy_folder(tree, tmp_path / "photos")
    (photos / "notes.txt").write_text("not an image")
    train = index_training(DataConfig(train=f"folder:{photos}"))
    assert len(train.items) == 6 and {Path(i.path).suffix for i in train.items} == {".png", ".tif", ".jpg"}
    images, names = load_images(train.items, progress=False)
    originals = [read_png(p.noisy_path) for p in index_sidd(tree).pairs]
    assert all(im.dtype == np.uint8 and im.shape == (96, 128, 3) for im in images)
    assert np.array_equal(images[0], originals[0]) and np.array_equal(images[1], originals[1])  # 8 and 16 bit
    assert np.array_equal(images[2], originals[2])  # TIFF
    glob = index_training(DataConfig(train=f"folder:{photos}", folder=FolderOptions(glob="*/*.tif")))
    assert [Path(i.path).suffix for i in glob.items] == [".tif"]
    flat = DataConfig(train=f"folder:{photos}", folder=FolderOptions(recursive=False))
    with pytest.raises(DatasetError, match="no PNG, JPEG or TIFF images in this folder"):
        index_training(flat)


def test_pairs_by_folders_and_by_patterns_blocks_and_whole_images(tree, tmp_path):
    twins = layouts.pairs_folder(tree, tmp_path / "twins")
    named = layouts.pairs_folder(tree, tmp_path / "named", patterns=True)
    whole = index_data(DataConfig(train=f"pairs:{twins}", eval=(f"pairs:{twins}",))).evals[0]
    assert whole.noisy.shape == (6, 96, 128, 3) and whole.image.tolist() == list(range(6))
    cut = PairsOptions(noisy_pattern="*_real.png", clean_pattern="*_mean.png", block=32)
    blocks = index_data(DataConfig(train=f"pairs:{named}", eval=(f"own=pairs:{named}",), pairs=cut)).evals[0]
    assert blocks.name == "own" and blocks.prefix == "val_own" and blocks.noisy.shape == (72, 32, 32, 3)
    assert blocks.image.tolist() == [i for i in range(6) for _ in range(12)]
    assert np.array_equal(blocks.noisy[12], whole.noisy[1][:32, :32])  # image 1's first block
    assert np.array_equal(blocks.clean[12], whole.clean[1][:32, :32])
    # Different sizes stay whole, as a list.
    first = sorted((twins / "noisy" / "a").glob("*.png"))[0]
    for half in ("noisy", "clean"):
        shutil.copyfile(first.parent.parent.parent / half / "a" / first.name, twins / half / "small.png")
        img = read_png(twins / half / "small.png")[:64, :96]
        layouts.write_image(twins / half / "small.png", img)
    mixed = index_data(DataConfig(train=f"pairs:{twins}", eval=(f"pairs:{twins}",))).evals[0]
    assert isinstance(mixed.noisy, list) and {a.shape for a in mixed.noisy} == {(96, 128, 3), (64, 96, 3)}


def test_blocks_and_dnd_are_read_as_written(tree, tmp_path):
    blocks = layouts.blocks_file(tree, tmp_path / "b.mat")
    (item,) = index_training(DataConfig(train=f"blocks:{blocks}")).items
    got = read_item(item)
    first = read_png(index_sidd(tree).pairs[0].noisy_path)
    assert (
        len(got) == 12
        and np.array_equal(got[0], first[:32, :32])
        and np.array_equal(got[1], first[32:64, :32])
    )
    np.save(tmp_path / "b.npy", np.stack(got))
    (npy,) = index_training(DataConfig(train=f"blocks:{tmp_path / 'b.npy'}")).items
    assert np.array_equal(np.stack(read_item(npy)), np.stack(got))
    dnd = layouts.dnd_tree(tree, tmp_path / "dnd")
    items = index_training(DataConfig(train=f"dnd:{dnd}")).items
    assert [i.shapes for i in items] == [((96, 128),)] * 2
    assert (
        np.abs(read_item(items[0])[0].astype(int) - first.astype(int)).max() <= 1
    )  # 8 bits -> [0, 1] -> 8 bits


def test_stage_keys_follow_the_training_data_not_the_evaluation_sources(tree, tmp_path):
    photos = layouts.noisy_folder(tree, tmp_path / "photos")
    twins = layouts.pairs_folder(tree, tmp_path / "twins")
    study = load_profile("tiny", ['ablations=["ssid"]'])

    def keys(**data) -> list[str]:
        cfg = DataConfig(**data)
        return [s.key for s in plan(study, index_training(cfg), store=tmp_path / "store")[0].stages]

    base = keys(train=f"folder:{photos}")
    assert keys(train=f"folder:{photos}", eval=(f"pairs:{twins}",)) == base  # evaluation sources: no
    assert keys(train=f"folder:{photos}", eval=(f"a=pairs:{twins}", f"b=pairs:{twins}")) == base
    first = sorted(photos.rglob("*.png"))[0]
    img = read_png(first).copy()
    img[0, 0] = 255 - img[0, 0]
    layouts.write_image(first, img)
    changed = keys(train=f"folder:{photos}")
    assert all(a != b for a, b in zip(changed, base, strict=True))  # training content: yes, every stage
