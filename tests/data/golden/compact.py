"""Compact golden fixtures: what a golden file of the specification holds, minus its weights.

The weights of every golden file come from ``torch.manual_seed(0)`` and the original
constructors, so they are regenerated here from the layer list (construction order, shapes, which
layers have biases) and the original initialisation, and checked against the full files when the
fixtures are written; the input is ``torch.rand`` from a generator seeded 1, times 255.
Only the expected output (and the tolerance) is stored. ``python tests/data/golden/compact.py
DIR`` rewrites the fixtures from the specification's golden folder DIR.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).parent
CASES = {
    "ssid_bnn_seed0": "laine_kaiming",
    "ssid_lan_seed0": "torch_default",
    "ssid_unet_seed0": "laine_kaiming",
    "apbsn_dbsnl_w32_seed0": "torch_default",
    "apbsn_train_pd5_w32_seed0": "torch_default",
    "apbsn_eval_pd2_w32_seed0": "torch_default",
    "apbsn_eval_pd2_r3_w32_seed0": "torch_default",
    "apbsn_eval_pd2_seed0": "torch_default",
    "lgbpn_train_w32_seed0": "torch_default",
    "lgbpn_eval_w32_seed0": "torch_default",
    "lgbpn_eval_r3_w32_seed0": "torch_default",
}


def layer_list(state_dict: dict) -> list:
    """How to rebuild ``state_dict`` in construction order.

    Entries: ("conv", prefix, [out, in, k], has_bias): a default-initialised convolution;
    ("alias", prefix, shape, has_bias, target): a convolution constructed (drawing random numbers)
    whose stored tensors are the target's; ("same", prefix, target): the target's tensors, nothing
    drawn; ("ones", key, shape): a parameter initialised to ones. Mask buffers are rebuilt by the
    modules themselves.
    """
    out = []
    for key, v in state_dict.items():
        if key.endswith(".mask") or key.endswith(".bias"):
            continue
        prefix = key[: -len(".weight")] if key.endswith(".weight") else key
        has_bias = f"{prefix}.bias" in state_dict
        if key == "output_block.4.weight":  # BNN: the same module as output_conv
            out.append(("same", prefix, "output_conv"))
        elif key.endswith(".test_conv.weight"):  # LG-BPN: constructed, then re-pointed at the DSPMC's
            out.append(("alias", prefix, list(v.shape[:3]), has_bias, prefix[: -len(".test_conv")]))
        elif key.endswith(".weight") and v.dim() == 4:
            out.append(("conv", prefix, list(v.shape[:3]), has_bias))
        else:
            out.append(("ones", key, list(v.shape)))
    return out


def regenerate_weights(layers: list, init: str, premask: dict | None = None) -> dict[str, torch.Tensor]:
    """The original state dict from :func:`layer_list`, ``torch.manual_seed(0)`` and the original
    initialisation; ``premask``: prefixes whose stored weight was multiplied by a (k, k) mask."""
    torch.manual_seed(0)
    sd: dict[str, torch.Tensor] = {}
    convs = []
    for entry in layers:
        kind, prefix = entry[0], entry[1]
        if kind in ("conv", "alias"):
            out_ch, in_ch, k = entry[2]
            conv = nn.Conv2d(in_ch, out_ch, k, bias=entry[3])
            if kind == "conv":
                convs.append((prefix, conv))
        elif kind == "ones":
            sd[prefix] = torch.ones(entry[2])
    if init == "laine_kaiming":  # the originals' init_weights: every conv, then the linear output
        for _, conv in convs:
            nn.init.kaiming_normal_(conv.weight, a=0.1)
            nn.init.zeros_(conv.bias)
        nn.init.kaiming_normal_(dict(convs)["output_conv"].weight, nonlinearity="linear")
    for prefix, conv in convs:
        sd[f"{prefix}.weight"] = conv.weight.detach()
        if conv.bias is not None:
            sd[f"{prefix}.bias"] = conv.bias.detach()
    for prefix, mask in (premask or {}).items():
        sd[f"{prefix}.weight"] = sd[f"{prefix}.weight"] * mask
    for entry in layers:
        if entry[0] in ("same", "alias"):
            target = entry[2] if entry[0] == "same" else entry[4]
            sd[f"{entry[1]}.weight"] = sd[f"{target}.weight"]
            if f"{target}.bias" in sd:
                sd[f"{entry[1]}.bias"] = sd[f"{target}.bias"]
    return sd


def golden_input(shape: list[int]) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1)) * 255


def call(model: nn.Module, g: dict) -> torch.Tensor:
    """Make the golden file's call: its mode, method and (for R3) the seed of its random masks."""
    model.train(g["mode"] == "train")
    extra = g["extra_call_args"]
    with torch.no_grad():
        if extra.get("method") == "denoise":
            if "r3_manual_seed" in extra:
                torch.manual_seed(extra["r3_manual_seed"])
            return model.denoise(g["input"])
        return model(g["input"])


def load(name: str) -> dict:
    d = torch.load(HERE / f"{name}.pt", weights_only=True)
    d["state_dict"] = regenerate_weights(d["layers"], d["init"], d.get("premask"))
    d["input"] = golden_input(d["input_shape"])
    return d


def compact(spec_dir: Path) -> None:
    for name, init in CASES.items():
        full = torch.load(spec_dir / f"{name}.pt", weights_only=True)
        layers = layer_list(full["state_dict"])
        small = {
            k: full[k] for k in ("constructor", "kwargs", "mode", "extra_call_args", "output", "tolerance")
        }
        small.update(layers=layers, init=init, input_shape=list(full["input"].shape))
        plain = regenerate_weights(layers, init)
        premask = {}
        for key, v in full["state_dict"].items():  # eval checkpoints store mask-multiplied weights
            prefix = key[: -len(".mask")]
            if key.endswith(".mask") and not torch.equal(
                plain[f"{prefix}.weight"], full["state_dict"][f"{prefix}.weight"]
            ):
                premask[prefix] = v[0, 0].contiguous().clone()
        if premask:
            small["premask"] = premask
        sd = regenerate_weights(layers, init, premask)
        assert set(sd) == {k for k in full["state_dict"] if not k.endswith(".mask")}, name
        assert all(torch.equal(sd[k], v) for k, v in full["state_dict"].items() if not k.endswith(".mask")), (
            name
        )
        assert torch.equal(golden_input(small["input_shape"]), full["input"]), name
        torch.save(small, HERE / f"{name}.pt")


if __name__ == "__main__":
    compact(Path(sys.argv[1]))
