"""The catalogue and the profiles: every entry resolves to the stage graph the paper describes."""

from __future__ import annotations

import pytest

from models.apbsn import APBSN
from models.layers.dtb import DTB
from models.lgbpn import BNNBranch, GlobalBranch, LGBPNDenoiser, LocalBranch
from models.ssid import BNN, LAN, UNet
from orchestrator.config import ConfigError
from orchestrator.study.catalogue import CATALOGUE, load_profile, resolve, selected
from orchestrator.train.store import build_model


@pytest.fixture(scope="module")
def smoke():
    return load_profile("smoke")


def _stages(study, name):
    return {s.name: s for s in resolve(study, name)[1]}


def test_every_entry_resolves_and_carries_published_numbers(smoke):
    assert selected(smoke) == list(CATALOGUE)
    assert {"lgbpn", "L-1", "L-2", "L-3", "L-4", "L-5", "ssid", "S-1", "S-2", "apbsn"} <= set(CATALOGUE)
    for name, entry in CATALOGUE.items():
        assert entry.published is not None and 20 < entry.published.psnr < 40, name
        resolve(smoke, name)


def test_ssid_graphs(smoke):
    ssid = _stages(smoke, "ssid")
    assert list(ssid) == ["bnn", "lan", "unet"]
    assert ssid["bnn"].targets == ("noisy",) and ssid["bnn"].loss == "l1"
    assert ssid["lan"].targets == ("bnn",)
    assert ssid["unet"].targets == ("bnn", "lan") and ssid["unet"].loss == "ssid_adaptive"
    nets = {k: build_model(s.model, seed=0) for k, s in ssid.items()}
    assert isinstance(nets["bnn"], BNN) and isinstance(nets["lan"], LAN) and isinstance(nets["unet"], UNet)

    s2 = _stages(smoke, "S-2")
    assert s2["lan"].targets == ("noisy",) and s2["lan"].upstream == ()
    assert s2["unet"].targets == ("bnn", "lan")
    assert s2["bnn"] == ssid["bnn"]  # the same stage: trained once for both

    s1 = _stages(smoke, "S-1")
    net = build_model(s1["bnn"].model, seed=0)
    assert isinstance(net, LGBPNDenoiser) and net.bsn.global_ is None
    assert isinstance(net.bsn.local, LocalBranch) and not net.r3
    assert s1["lan"].targets == ("bnn",) and s1["unet"].targets == ("bnn", "lan")


def _lgbpn(study, name) -> LGBPNDenoiser:
    (stage,) = resolve(study, name)[1]
    assert stage.targets == ("noisy",) and stage.loss == "l1"
    return build_model(stage.model, seed=0)


def test_lgbpn_graphs(smoke):
    orig = _lgbpn(smoke, "lgbpn").bsn
    assert isinstance(orig.local, LocalBranch) and isinstance(orig.global_, GlobalBranch)
    assert orig.fusion == "concat"
    assert isinstance(_lgbpn(smoke, "L-1").bsn.local, BNNBranch)
    assert _lgbpn(smoke, "L-2").bsn.fusion == "average"
    l3 = _lgbpn(smoke, "L-3").bsn
    assert isinstance(l3.local.body, DTB) and len(l3.local.body.blocks) == 3
    assert len(l3.global_.body.blocks) == 3
    l4, l5 = _lgbpn(smoke, "L-4").bsn, _lgbpn(smoke, "L-5").bsn
    assert l4.global_ is None and isinstance(l4.local, LocalBranch)
    assert l5.local is None and isinstance(l5.global_, GlobalBranch)
    (ap,) = resolve(smoke, "apbsn")[1]
    assert isinstance(build_model(ap.model, seed=0), APBSN)


def test_paper_profile_holds_the_published_hyper_parameters():
    paper = load_profile("paper")
    lg, ssid, ap = paper.train["lgbpn"], paper.train["ssid"], paper.train["apbsn"]
    assert (lg.epochs, lg.batch, lg.patch, lg.optim.lr, lg.optim.schedule, lg.optim.decay_epochs) == (
        20,
        8,
        256,
        1e-4,
        "step",
        8,
    )
    assert (ssid.steps, ssid.batch, ssid.patch, ssid.optim.lr, ssid.optim.schedule) == (
        400_000,
        8,
        256,
        3e-4,
        "cosine",
    )
    assert (ap.patch, ap.augment) == (120, ("hflip", "rot90"))
    assert paper.eval.blocks == 0
    (bnn, *_), (bsn,) = resolve(paper, "ssid")[1], resolve(paper, "lgbpn")[1]
    assert bnn.model.kwargs == {} and bsn.model.kwargs == {}  # published sizes: the builders' defaults


def test_overrides_from_the_command_line_and_their_errors():
    study = load_profile(
        "smoke", ["train.ssid.steps=7", "overrides.L-2.bsn.model.kwargs.width=8", "models.ssid_lan.blocks=1"]
    )
    assert all(s.train.steps == 7 for s in resolve(study, "ssid")[1])
    assert _stages(study, "ssid")["lan"].model.kwargs["blocks"] == 1
    (l2,) = resolve(study, "L-2")[1]
    assert l2.model.kwargs["width"] == 8 and l2.model.kwargs["fusion"] == "average"
    with pytest.raises(ConfigError, match="train.ssid.stepz"):
        load_profile("smoke", ["train.ssid.stepz=7"])
    with pytest.raises(ConfigError, match=r"L-2\.bsn\.model\.kwargs\.widht"):
        resolve(load_profile("smoke", ["overrides.L-2.bsn.model.kwargs.widht=8"]), "L-2")
    with pytest.raises(ConfigError, match=r"'train\.ssid\.batch': must be >= 1, got 0"):
        resolve(load_profile("smoke", ["train.ssid.batch=0"]), "ssid")
    # An error in a value the user set under overrides is named by that key.
    with pytest.raises(ConfigError, match=r"'overrides\.ssid\.bnn\.train\.steps': expected int, got ''"):
        resolve(load_profile("smoke", ["overrides.ssid.bnn.train.steps="]), "ssid")
    with pytest.raises(ConfigError, match=r"'models\.ssid_bnn\.depth': not an argument of 'ssid_bnn'"):
        resolve(load_profile("smoke", ["models.ssid_bnn.depth=3"]), "ssid")
    # loss_kwargs are checked against the loss builder's signature before any trial starts.
    perceptual = ["overrides.ssid.unet.loss=perceptual"]
    study = load_profile("smoke", [*perceptual, "overrides.ssid.unet.loss_kwargs.levels=2"])
    unet = _stages(study, "ssid")["unet"]
    assert unet.loss == "perceptual" and unet.loss_kwargs == {"levels": 2}
    with pytest.raises(ConfigError, match=r"loss_kwargs\.levelz': not an argument of loss 'perceptual'"):
        resolve(load_profile("smoke", [*perceptual, "overrides.ssid.unet.loss_kwargs.levelz=2"]), "ssid")
    with pytest.raises(ConfigError, match=r"loss_kwargs\.levels': not an argument of loss 'ssid_adaptive'"):
        resolve(load_profile("smoke", ["overrides.ssid.unet.loss_kwargs.levels=2"]), "ssid")
    with pytest.raises(ConfigError, match="schedule 'step' needs decay_every or decay_epochs"):
        resolve(
            load_profile("smoke", ["train.lgbpn.optim.decay_every=0", "train.lgbpn.optim.decay_epochs=0"]),
            "L-2",
        )
    with pytest.raises(ConfigError, match=r"unknown ablation\(s\) \['L-9'\]"):
        selected(load_profile("smoke", ['ablations=["L-9"]']))
    with pytest.raises(ConfigError, match="no profile 'nope'"):
        load_profile("nope")


def test_a_new_ablation_is_one_entry():
    study = load_profile(
        "smoke",
        [
            'custom.S-3={"family": "ssid", "description": "LAN with a 5x5 view",'
            ' "overrides": {"lan.model.kwargs.blindspot": 5}}'
        ],
    )
    assert "S-3" in selected(study)
    stages = _stages(study, "S-3")
    assert stages["lan"].model.kwargs["blindspot"] == 5 and stages["lan"].targets == ("bnn",)
    with pytest.raises(ConfigError, match="neither 'noisy' nor an earlier stage"):
        bad = load_profile("smoke", ['custom.S-4={"family": "ssid", "overrides": {"bnn.targets": ["lan"]}}'])
        resolve(bad, "S-4")


def test_an_interrupt_is_not_called_a_scheduler_stop():
    """A trial that ended unfinished and without an error was stopped by the scheduler when a
    sweep has one, else by an interrupt (Ctrl-C); a stage never started says the job ended."""
    from types import SimpleNamespace

    from orchestrator.study.tune import INTERRUPTED, _results

    stages = {k: SimpleNamespace(label=f"x.{k}") for k in ("a", "b", "c")}
    deps = {"a": set(), "b": {"a"}, "c": set()}
    grid = [SimpleNamespace(config={"key": "a"}, metrics={"step": 3}, error=None)]
    done, errors = _results(grid, stages, deps, scheduled=False)
    assert not done and errors["a"] == INTERRUPTED
    assert errors["b"] == "not run: upstream ['x.a'] did not finish"
    assert errors["c"].startswith("not run: the job ended before it started")
    _, errors = _results(grid, stages, deps, scheduled=True)
    assert errors["a"] == "stopped early by the scheduler"
    assert errors["b"] == "stopped early: not run, upstream ['x.a'] was stopped early"


def test_workers_are_set_per_study_or_per_stage_and_must_divide_the_batch():
    from orchestrator.study.plan import stage_key

    every = resolve(load_profile("tiny", ["trial.workers=2"]), "ssid").stages
    assert [s.trial.workers for s in every] == [2, 2, 2]
    one = resolve(load_profile("tiny", ["overrides.ssid.lan.trial.workers=2"]), "ssid").stages
    assert [s.trial.workers for s in one] == [1, 2, 1]
    # where a stage trains is not what it computes: the same key
    assert stage_key(every[0], {}, "d") == stage_key(one[0], {}, "d")
    with pytest.raises(ConfigError, match=r"stage apbsn.bsn: train.batch 2 is not a multiple of trial.wor"):
        resolve(load_profile("tiny", ["trial.workers=3"]), "apbsn")
    with pytest.raises(ConfigError, match=r"'overrides.apbsn.bsn.trial.workers': must be >= 1"):
        resolve(load_profile("tiny", ["overrides.apbsn.bsn.trial.workers=0"]), "apbsn")
    with pytest.raises(ConfigError, match="'trial': invalid TrialConfig: workers must be >= 1, got 0"):
        load_profile("tiny", ["trial.workers=0"])
