"""``jobs/denoise.py``: formats and bit depths, tiled against whole-image inference, every bad
input, and a round trip from a trained smoke stage to a denoised folder by MLflow URI."""

from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from jobs import denoise
from models.registry import create_model
from orchestrator.data.images import ImageError, png_chunk, read_image, write_image
from orchestrator.tools.load import CheckpointError, load_denoiser
from orchestrator.tools.tiling import denoise_image
from tests.files import CodePayload, stage_model_file, study_args

RNG = np.random.default_rng(0)


def _png16_filtered(path: Path, a: np.ndarray) -> None:
    """A 16-bit RGB PNG whose rows use each of the five PNG filters in turn."""
    h, w, _ = a.shape
    raw = a.astype(">u2").reshape(h, -1).view(np.uint8).astype(np.int64)
    bpp, rows = 6, []
    for y in range(h):
        x = raw[y]
        up = raw[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int64), x[:-bpp]])
        ul = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        kind = y % 5
        if kind == 0:
            f = x
        elif kind == 1:
            f = x - left
        elif kind == 2:
            f = x - up
        elif kind == 3:
            f = x - (left + up) // 2
        else:
            p = left + up - ul
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - ul)
            f = x - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, ul))
        rows.append(bytes([kind]) + (f % 256).astype(np.uint8).tobytes())

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    idat = zlib.compress(b"".join(rows))
    signature = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(
        signature + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "name,dtype,exact",
    [
        ("a.png", np.uint8, True),
        ("a.png", np.uint16, True),
        ("a.tif", np.uint8, True),
        ("a.tiff", np.uint16, True),
        ("a.jpg", np.uint8, False),
    ],
)
def test_every_format_and_bit_depth_round_trips(tmp_path, name, dtype, exact):
    top = 255 if dtype == np.uint8 else 65535
    a = RNG.integers(0, top + 1, (21, 34, 3)).astype(dtype)
    if not exact:
        yy, xx = np.mgrid[0:21, 0:34]  # smooth, so JPEG's loss stays small
        a = np.stack([yy * 10, xx * 6, (yy + xx) * 4], -1).astype(np.uint8)
    write_image(tmp_path / name, a)
    b = read_image(tmp_path / name)
    assert b.dtype == dtype and b.shape == (21, 34, 3)
    if exact:
        assert np.array_equal(a, b)
    else:
        assert np.abs(a.astype(int) - b).mean() < 4


def test_sixteen_bit_png_with_every_row_filter_decodes_exactly(tmp_path):
    a = RNG.integers(0, 65536, (10, 13, 3)).astype(np.uint16)
    _png16_filtered(tmp_path / "f.png", a)
    assert np.array_equal(read_image(tmp_path / "f.png"), a)
    data = bytearray((tmp_path / "f.png").read_bytes())
    data[data.index(b"IDAT") + 20] ^= 0x01  # one bit of the pixel data
    (tmp_path / "flip.png").write_bytes(bytes(data))
    with pytest.raises(ImageError, match=r"flip.png: corrupt PNG \(CRC mismatch in the b'IDAT' chunk"):
        read_image(tmp_path / "flip.png")
    (tmp_path / "cut.png").write_bytes(bytes(data[:60]))
    with pytest.raises(ImageError, match=r"cut.png: truncated PNG \(b'IDAT' chunk at byte 33 cut short\)"):
        read_image(tmp_path / "cut.png")


def test_unusable_images_name_the_file_and_the_reason(tmp_path):
    Image.fromarray(RNG.integers(0, 255, (8, 8, 4), dtype=np.uint8), "RGBA").save(tmp_path / "alpha.png")
    Image.fromarray(RNG.integers(0, 255, (8, 8), dtype=np.uint8), "L").save(tmp_path / "gray.png")
    (tmp_path / "garbage.png").write_bytes(b"this is not an image")
    write_image(tmp_path / "ok.png", RNG.integers(0, 255, (8, 8, 3), dtype=np.uint8))
    (tmp_path / "cut.png").write_bytes((tmp_path / "ok.png").read_bytes()[:40])
    cases = {"alpha.png": "alpha channel", "gray.png": "one channel", "garbage.png": "cannot be read"}
    cases |= {"cut.png": "cannot be read"}
    for name, reason in cases.items():
        with pytest.raises(ImageError, match=reason) as err:
            read_image(tmp_path / name)
        assert name in str(err.value)


@pytest.mark.parametrize(
    "name,kwargs,margin,tol",
    [
        ("ssid_unet", {"dim": 8}, 160, 1e-2),
        ("ssid_lan", {"width": 16, "blocks": 1}, 64, 1e-2),
        ("lgbpn", {"width": 16, "head_ch": 8, "modules": 2, "blocks": 1, "r3": False}, 64, 1e-2),
        ("apbsn", {"bsn_kwargs": {"base_ch": 16, "num_module": 2}, "r3": False}, 64, 5e-2),
    ],
)
def test_tiled_output_equals_whole_image_inference(name, kwargs, margin, tol):
    torch.manual_seed(0)
    model = create_model(name, **kwargs).eval()
    img = RNG.uniform(0, 255, (200, 300, 3)).astype(np.float32)  # not a multiple of 32 either way
    whole = denoise_image(model, img)
    seen = []
    tiled = denoise_image(model, img, tile=64, margin=margin, blend=16, on_tile=lambda d, t: seen.append(t))
    assert len(seen) == 4 * 5 and tiled.shape == img.shape
    assert float(np.abs(tiled - whole).max()) < tol


def test_bad_checkpoints_fail_clearly(tmp_path, capsys):
    good = stage_model_file(tmp_path)
    assert "ssid_unet" in load_denoiser(str(good)).description
    (tmp_path / "text.pt").write_text("not a checkpoint")
    torch.save({"x": CodePayload(tmp_path / "ran")}, tmp_path / "code.pt")
    blob = torch.load(good, weights_only=True)
    blob["meta"]["config"]["model"]["kwargs"]["dim"] = 12
    torch.save(blob, tmp_path / "wrong.pt")
    torch.save({"meta": {"format": 1, "key": "k", "step": 2}, "model": {}}, tmp_path / "step_2.pt")
    torch.save(create_model("ssid_unet", dim=8).state_dict(), tmp_path / "raw.pt")
    cases = {
        "missing.pt": "no such file",
        "text.pt": "not a PyTorch checkpoint",
        "code.pt": r"weights_only=True.*Python objects.*global posix\.system refused\); nothing was run",
        "wrong.pt": r"do not fit the ssid_unet architecture \(\d+ of another shape, e.g. body",
        "step_2.pt": "a training checkpoint",
        "raw.pt": "--original",
    }
    for name, reason in cases.items():
        with pytest.raises(CheckpointError, match=reason):
            load_denoiser(str(tmp_path / name))
    assert not (tmp_path / "ran").exists()  # the payload never ran
    with pytest.raises(CheckpointError, match="unknown; known"):
        load_denoiser(str(tmp_path / "raw.pt"), original="network.nope.Net")
    with pytest.raises(CheckpointError, match="do not fit network.bnn.BNN"):
        load_denoiser(str(tmp_path / "raw.pt"), original="network.bnn.BNN", original_kwargs={"dim": 8})
    uri = f"sqlite:///{tmp_path / 'db'}"
    with pytest.raises(CheckpointError, match="not found in the MLflow store"):
        load_denoiser("runs:/" + "0" * 32, tracking_uri=uri)
    with pytest.raises(CheckpointError, match="not found in the MLflow store"):
        load_denoiser("models:/nothing/1", tracking_uri=uri)
    # The job maps these to exit status 3, and a bad path or folder to 2.
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "x.png", RNG.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    assert denoise.main([str(tmp_path / "in"), "--checkpoint", str(tmp_path / "wrong.pt")]) == 3
    assert denoise.main([str(tmp_path / "nowhere"), "--checkpoint", str(good)]) == 2
    assert "no such file or folder" in capsys.readouterr().err


@pytest.mark.ray
def test_train_a_stage_then_denoise_a_folder_by_its_mlflow_run(ray_local, tmp_path, capsys):
    from mlflow import MlflowClient

    from jobs import ablations

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sets = [f"data.cache_dir={tmp_path / 'data'}"]
    assert ablations.main(study_args(tmp_path / "runs", uri, sets=sets)) == 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("ablations-tiny")
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "apbsn"]
    folder = tmp_path / "photos"
    write_image(folder / "a.png", RNG.integers(0, 255, (70, 90, 3), dtype=np.uint8))
    write_image(folder / "b.tif", RNG.integers(0, 65535, (64, 64, 3)).astype(np.uint16))
    write_image(folder / "c.jpg", RNG.integers(0, 255, (50, 60, 3), dtype=np.uint8))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    capsys.readouterr()
    out = tmp_path / "out"
    code = denoise.main(
        [str(folder), "--checkpoint", f"runs:/{parent.info.run_id}", "--tracking-uri", uri, "--out", str(out)]
    )
    printed = capsys.readouterr()
    # one file skipped, the others written
    assert code == 1 and "broken.png" in printed.err and "wrote 3 image(s)" in printed.out
    assert read_image(out / "a.png").shape == (70, 90, 3)
    assert read_image(out / "b.tif").dtype == np.uint16
    assert read_image(out / "c.jpg").shape == (50, 60, 3)
    # The same model found by its ablation's name, evaluated on the validation blocks.
    from jobs import evaluate

    (data_root,) = (tmp_path / "data").glob("synthetic-*")
    args = ["--ablation", "apbsn", "--tracking-uri", uri, "--data", str(data_root), "--no-tracking"]
    assert evaluate.main([*args, "--out", str(tmp_path / "ev")]) == 0
    assert f"MLflow run {parent.data.tags['denoise.final_run']}" in capsys.readouterr().out
    # The same model through the model registry.
    child = parent.data.tags["denoise.final_run"]
    client.create_registered_model("apbsn-tiny")
    client.create_model_version("apbsn-tiny", f"runs:/{child}/model.pt", run_id=child)
    den = load_denoiser("models:/apbsn-tiny/1", tracking_uri=uri)
    assert "apbsn" in den.description and child in den.description

    # Distilled: --distill on the trained ablation trains only the student; a rerun trains nothing;
    # the tools take the distilled row like any other.
    capsys.readouterr()
    distill = ["--profile", "tiny", "--ablations", "apbsn", "--out", str(tmp_path / "runs"), "--distill"]
    distill += ["--tracking-uri", uri, *(a for s in sets for a in ("--set", s))]
    assert ablations.main(distill) == 0
    printed = capsys.readouterr().out
    assert "trained 1 stage(s), reused 1" in printed and "| apbsn+D |" in printed
    rows = {r["ablation"]: r for r in csv.DictReader((tmp_path / "runs" / "results.csv").open())}
    student = rows["apbsn+D"]
    assert student["stage"] == "distill" and float(student["ms_per_block"]) > 0
    assert int(student["params"]) == sum(p.numel() for p in create_model("ssid_unet", dim=8).parameters())
    assert rows["apbsn+D"]["delta_psnr_vs_original"]  # paired with its teacher
    assert ablations.main(distill) == 0
    assert "trained 0 stage(s), reused 2" in capsys.readouterr().out
    (parent,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "apbsn+D"]
    code = denoise.main(
        [str(folder), "--checkpoint", f"runs:/{parent.info.run_id}", "--tracking-uri", uri, "--out", str(out)]
    )
    assert code == 1 and "wrote 3 image(s)" in capsys.readouterr().out
    args = ["--ablation", "apbsn+D", "--tracking-uri", uri, "--data", str(data_root), "--no-tracking"]
    assert evaluate.main([*args, "--out", str(tmp_path / "ev-d")]) == 0
    assert f"MLflow run {parent.data.tags['denoise.final_run']}" in capsys.readouterr().out
