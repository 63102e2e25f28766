"""Compact golden fixtures: what a golden file of the specification holds, minus its weights.

The weights of the SSID golden files come from ``torch.manual_seed(0)`` and the original
constructors, so they are regenerated here from the layer list (construction order and shapes) and
the original initialisation; the input is ``torch.rand`` from a generator seeded 1, times 255.
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
}


def regenerate_weights(layers: list, init: str) -> dict[str, torch.Tensor]:
    """The original state dict, from (key prefix, out, in, k) in construction order."""
    torch.manual_seed(0)
    convs = [(key, nn.Conv2d(cin, cout, k)) for key, cout, cin, k in layers]
    if init == "laine_kaiming":  # the originals' init_weights: every conv, then the linear output
        for _, conv in convs:
            nn.init.kaiming_normal_(conv.weight, a=0.1)
            nn.init.zeros_(conv.bias)
        nn.init.kaiming_normal_(dict(convs)["output_conv"].weight, nonlinearity="linear")
    sd = {}
    for key, conv in convs:
        sd[f"{key}.weight"], sd[f"{key}.bias"] = conv.weight.detach(), conv.bias.detach()
    if "output_block.0" in dict(convs):  # BNN: output_block.4 is output_conv itself
        sd["output_block.4.weight"], sd["output_block.4.bias"] = (
            sd["output_conv.weight"],
            sd["output_conv.bias"],
        )
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
    d["state_dict"] = regenerate_weights(d["layers"], d["init"])
    d["input"] = golden_input(d["input_shape"])
    return d


def compact(spec_dir: Path) -> None:
    for name, init in CASES.items():
        full = torch.load(spec_dir / f"{name}.pt", weights_only=True)
        layers = [
            (key[: -len(".weight")], *w.shape[:2], w.shape[2])
            for key, w in full["state_dict"].items()
            if key.endswith(".weight") and key != "output_block.4.weight"
        ]  # masks (buffers) are rebuilt by the modules themselves
        small = {
            k: full[k] for k in ("constructor", "kwargs", "mode", "extra_call_args", "output", "tolerance")
        }
        small.update(layers=layers, init=init, input_shape=list(full["input"].shape))
        sd = regenerate_weights(layers, init)
        assert all(torch.equal(sd[k], v) for k, v in full["state_dict"].items() if not k.endswith(".mask")), (
            name
        )
        assert torch.equal(golden_input(small["input_shape"]), full["input"]), name
        torch.save(small, HERE / f"{name}.pt")


if __name__ == "__main__":
    compact(Path(sys.argv[1]))
