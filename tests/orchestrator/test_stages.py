"""Training stages on real SIDD-layout files: bit-identical resume, and the
errors a stage gives before training when its upstream is missing or from another config."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from orchestrator.config import ConfigError
from orchestrator.data.crops import CropSampler, tiles_per_image
from orchestrator.data.sources import index_data
from orchestrator.study.catalogue import load_profile
from orchestrator.study.plan import LocalData, plan, run_local
from orchestrator.train.store import UpstreamError

# The tiny profile's SSID, validated every 3 steps on 4 of its 6 blocks (a subset is named as one).
SSID = [
    'ablations=["ssid"]',
    "train.ssid.eval_every=3",
    "train.ssid.eval_blocks=4",
    "data.synthetic.val_blocks=6",
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    """The tiny profile's synthetic data, generated once in SIDD's layout and read back."""
    cache = tmp_path_factory.mktemp("tiny-data")
    study = _tiny(cache)
    data = index_data(study.data)
    return cache, data.train, LocalData.of(data)


def _tiny(cache, *extra):
    return load_profile("tiny", [f"data.cache_dir={cache}", *SSID, *extra])


def test_crops_are_a_function_of_seed_and_step():
    imgs = [np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype=np.uint8) for i in range(3)]
    a = CropSampler(imgs, patch=16, batch=4, seed=1)
    b = CropSampler(imgs, patch=16, batch=4, seed=1)
    assert np.array_equal(a.batch(5), b.batch(5)) and not np.array_equal(a.batch(5), a.batch(6))
    with pytest.raises(ValueError, match=r"train.patch=64 is larger than 3 image\(s\): x0 \(40x50\)"):
        CropSampler(imgs, names=["x0", "x1", "x2"], patch=64, batch=1, seed=0)
    assert tiles_per_image(3024, 4032, tile=512, stride=384) == 88
    assert tiles_per_image(256, 320, tile=512, stride=384) == 1


def test_a_workers_share_of_each_batch_is_its_slice_of_the_whole_batch():
    from orchestrator.train.ddp import Share

    imgs = [np.random.default_rng(i).integers(0, 256, (40, 50, 3), dtype=np.uint8) for i in range(3)]
    kw = {"patch": 16, "batch": 8, "seed": 3, "augment": ("hflip", "rot90", "transpose")}
    whole = CropSampler(imgs, **kw).batch(7)
    for world in (2, 4):
        parts = [CropSampler(imgs, share=Share(r, world).of(8), **kw).batch(7) for r in range(world)]
        assert np.array_equal(np.concatenate(parts), whole) and len(parts[0]) == 8 // world
    with pytest.raises(ValueError, match="does not split into 3"):
        Share(0, 3).of(8)


def _weights(results) -> dict[str, dict[str, torch.Tensor]]:
    return {s: torch.load(r.path, weights_only=True)["model"] for s, r in results["ssid"].items()}


class Interrupt(Exception):
    pass


def test_resume_inside_stage_two_is_bit_identical(tiny_data, tmp_path):
    cache, index, data = tiny_data
    study = _tiny(cache)
    straight = run_local(study, plan(study, index, store=tmp_path / "a"), data, progress=False)

    def stop(name, step, loss):
        if name == "ssid.lan" and step == 3:  # after the checkpoint at step 2
            raise Interrupt

    plans = plan(study, index, store=tmp_path / "b")
    with pytest.raises(Interrupt):
        run_local(study, plans, data, progress=False, on_step=stop)
    lan_dir = plans[0].stages[1].path
    assert sorted(p.name for p in (lan_dir / "checkpoints").iterdir()) == ["step_000000002.pt"]
    assert not (lan_dir / "model.pt").exists()
    resumed = run_local(study, plan(study, index, store=tmp_path / "b"), data, progress=False)
    assert resumed["ssid"]["bnn"].reused and not resumed["ssid"]["lan"].reused
    a, b = _weights(straight), _weights(resumed)
    for stage in ("bnn", "lan", "unet"):
        assert a[stage].keys() == b[stage].keys()
        for k in a[stage]:
            assert torch.equal(a[stage][k], b[stage][k]), f"{stage}.{k} differs after resume"
    history = [json.loads(line) for line in (lan_dir / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [1, 2, 3, 4, 5, 6]  # no step twice after the resume
    assert "val4_psnr" in history[2] and "val_psnr" not in history[2]  # a subset is named as one
    assert resumed["ssid"]["unet"].steps == 6 and not resumed["ssid"]["unet"].reused


def test_missing_or_foreign_upstream_fails_before_training(tiny_data, tmp_path):
    cache, index, _ = tiny_data
    store = tmp_path / "store"
    study = _tiny(cache, 'stages=["lan"]')
    with pytest.raises(UpstreamError, match=r"ssid\.bnn: not in stages=\['lan'\] and not trained yet"):
        plan(study, index, store=store)
    assert not store.exists()  # nothing was trained or written

    # A BNN trained with another config, offered as the pretrained stage 1.
    _, data = tiny_data[1], tiny_data[2]
    other = _tiny(cache, 'stages=["bnn"]', "train.ssid.steps=2")
    done = run_local(other, plan(other, index, store=tmp_path / "other"), data, progress=False)
    foreign = done["ssid"]["bnn"].path
    study = _tiny(cache, f"pretrained.ssid.bnn={foreign}")
    with pytest.raises(UpstreamError, match=r"different config \(train.steps: 2 here, 6 expected"):
        plan(study, index, store=store)
    assert not store.exists()
    for bad, key in (
        ("pretrained.ssid.bnm=x/model.pt", "pretrained.ssid.bnm"),
        ("overrides.S-9.lan={}", "overrides.S-9"),
        ('stages=["lam"]', "stages"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            plan(_tiny(cache, bad), index, store=store)
    study = _tiny(cache, f"pretrained.ssid.bnn={tmp_path / 'nowhere' / 'model.pt'}")
    with pytest.raises(UpstreamError, match="nowhere/model.pt does not exist"):
        plan(study, index, store=store)


def test_history_cut_short_by_a_full_disk_is_read_back_to_the_checkpoint(tmp_path):
    from orchestrator.train.loop import _open_history

    path = tmp_path / "history.jsonl"
    path.write_text('{"step": 1, "loss": 0.5}\n{"step": 2, "loss": 0.4}\n{"step": 3, "lo')
    with _open_history(path, 2) as f:
        f.write('{"step": 3, "loss": 0.3}\n')
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_bf16_and_channels_last_train_the_same_stage(tiny_data, tmp_path):
    """NHWC layout and reused memory keep the stage's key and losses; bf16 autocast is another computation
    (its own key), close to the float32 one; an unknown precision is named."""
    cache, index, data = tiny_data
    runs = {}
    for tag, extra in (
        ("fp32", []),
        ("nhwc", ["train.ssid.channels_last=true", "train.ssid.reuse_memory=true"]),
        ("bf16", ["train.ssid.precision=bf16", "train.ssid.channels_last=true"]),
    ):
        study = _tiny(cache, 'stages=["bnn"]', "train.ssid.steps=3", *extra)
        plans = plan(study, index, store=tmp_path / tag)
        run_local(study, plans, data, progress=False)
        path = plans[0].stages[0].path
        losses = [json.loads(line)["loss"] for line in (path / "history.jsonl").read_text().splitlines()]
        runs[tag] = path.name, np.array(losses)
    assert runs["nhwc"][0] == runs["fp32"][0] != runs["bf16"][0]
    np.testing.assert_allclose(runs["nhwc"][1], runs["fp32"][1], rtol=1e-4)
    np.testing.assert_allclose(runs["bf16"][1], runs["fp32"][1], rtol=0.05)
    assert not np.array_equal(runs["bf16"][1], runs["fp32"][1])
    with pytest.raises(ConfigError, match=r"train\.ssid\.precision"):
        _tiny(cache, "train.ssid.precision=fp16")


def test_warmup_and_output_bias_are_part_of_the_recipe_and_compile_is_not(tiny_data, tmp_path):
    """A warm-up scales the schedule's rate linearly over its steps; a data-dependent output bias
    starts the network at the data's mean; both change the stage's key, ``compile`` does not, and
    options left at their defaults keep the keys they had before the options existed."""
    from orchestrator.schema import OptimConfig, TrainConfig
    from orchestrator.train.loop import init_output_bias, make_scheduler
    from orchestrator.train.store import key_config

    def rates(optim, total=10):
        opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=optim.lr)
        sched = make_scheduler(opt, TrainConfig(optim=optim), total, 5)
        out = []
        for _ in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return np.array(out)

    cosine = rates(OptimConfig(lr=1.0, schedule="cosine"))
    warm = rates(OptimConfig(lr=1.0, schedule="cosine", warmup=4))
    np.testing.assert_allclose(warm[:4], cosine[:4] * np.array([0.25, 0.5, 0.75, 1.0]), rtol=1e-6)
    np.testing.assert_allclose(warm[4:], cosine[4:], rtol=1e-6)
    step = rates(OptimConfig(lr=1.0, schedule="step", decay_every=3, gamma=0.5, warmup=2))
    np.testing.assert_allclose(step[:7], [0.5, 1, 1, 0.5, 0.5, 0.5, 0.25])

    from models import create_model

    torch.manual_seed(0)
    net = create_model("ssid_unet", dim=8)
    x = torch.rand(2, 3, 32, 32) * 0.4 + 0.3
    note = init_output_bias(net, x)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).mean(dim=(0, 2, 3)), x.mean(dim=(0, 2, 3)), atol=1e-3)
    assert note.startswith("output bias from the first batch")

    cache, index, _ = tiny_data
    keys, configs = {}, {}
    for tag, extra in (
        ("plain", []),
        ("compile", ["train.ssid.compile=true"]),
        ("warmup", ["train.ssid.optim.warmup=2"]),
        ("bias", ["train.ssid.init_output_bias=true"]),
    ):
        study = _tiny(cache, 'stages=["bnn"]', *extra)
        stage = plan(study, index, store=tmp_path)[0].stages[0]
        keys[tag], configs[tag] = stage.key, key_config(stage.config)
    assert keys["plain"] == keys["compile"] and len(set(keys.values())) == 3
    plain = configs["plain"]
    assert "init_output_bias" not in plain["train"] and "warmup" not in plain["train"]["optim"]


def test_a_distilled_stage_trains_on_cached_teacher_outputs(tiny_data, tmp_path):
    """``train.cache_targets``: the teacher's outputs computed once per training image, cropped
    with the noisy crops; its own stage key; the teacher reused from the store."""
    cache, index, data = tiny_data
    extra = ['ablations=["apbsn"]', "distill=ssid_unet", "train.distill.steps=3"]
    keys = {}
    for cached in ("false", "true"):
        study = _tiny(cache, *extra, f"train.distill.cache_targets={cached}")
        plans = plan(study, index, store=tmp_path)
        done = run_local(study, plans, data, progress=False)
        path = done["apbsn+D"]["distill"].path.parent
        losses = [json.loads(line)["loss"] for line in (path / "history.jsonl").read_text().splitlines()]
        assert len(losses) == 3 and np.isfinite(losses).all()
        keys[cached] = plans[-1].stages[-1].key
        assert done["apbsn+D"]["bsn"].reused  # the teacher, trained once by its own row
    assert keys["false"] != keys["true"]
