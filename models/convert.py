"""Load state dicts saved by the original implementations into this library's modules.

``from_original(constructor, kwargs, state_dict)`` takes the original class path and its keyword
arguments (as recorded beside a checkpoint) and returns the equivalent registered module with the
weights loaded. Key names are translated by explicit tables, one per family; keys that carry no
information (aliases of other tensors) are dropped, and any key left over or missing raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import nn

from models.registry import create_model

__all__ = ["from_original", "CONVERTERS"]


def _ssid_unet_keys(key: str) -> str | None:
    """Original U-Net body names (encode_block_i / decode_block_i) -> :class:`UNetBody` names."""
    m = re.fullmatch(r"encode_block_(\d)\.(\d)\.(weight|bias)", key)
    if m:
        level, idx, leaf = int(m[1]), int(m[2]), m[3]
        if level == 1:
            return f"body.enc1{'a' if idx == 0 else 'b'}.{leaf}"
        return f"body.enc.{level - 2}.{leaf}"
    m = re.fullmatch(r"decode_block_(\d)\.(\d)\.(weight|bias)", key)
    if m:
        level, part, leaf = int(m[1]), "a" if m[2] == "0" else "b", m[3]
        if level in (5, 1):
            return f"body.dec{level}{part}.{leaf}"
        return f"body.dec_{part}.{4 - level}.{leaf}"  # levels 4, 3, 2 -> 0, 1, 2
    return None


def _ssid_bnn_keys(key: str) -> str | None:
    if key.startswith("output_conv."):
        return None  # the same tensor as output_block.4 in the original
    table = {"output_block.0": "fuse1", "output_block.2": "fuse2", "output_block.4": "out"}
    head, _, leaf = key.rpartition(".")
    return f"{table[head]}.{leaf}" if head in table else _ssid_unet_keys(key)


def _ssid_unet_only_keys(key: str) -> str | None:
    return key.replace("output_conv.", "out.", 1) if key.startswith("output_conv.") else _ssid_unet_keys(key)


def _ssid_lan_keys(key: str, blindspot: int) -> str | None:
    m = re.fullmatch(r"conv\.(\d+)\.(.+)", key)
    if not m:
        return None
    idx, rest = int(m[1]), m[2]
    nrb = 2 + 2 * (blindspot // 2)  # Sequential index of the residual group
    if idx == 0:
        return f"head.{rest}"
    if idx < nrb:
        return f"local.{(idx - 2) // 2}.{rest}"
    if idx == nrb + 1:
        return f"out.{rest}"
    rest = rest.replace("cuca.conv_du.0.", "squeeze.").replace("cuca.conv_du.2.", "excite.")
    return rest.replace("body.", "blocks.", 1).replace("tail.", "blocks_tail.", 1)


def _build_ssid(name: str, keys: Callable[[str], str | None], allowed: tuple[str, ...]):
    def build(kwargs: Mapping) -> tuple[nn.Module, Callable[[str], str | None]]:
        unknown = set(kwargs) - set(allowed)
        if unknown:
            raise ValueError(f"{name}: unsupported original arguments {sorted(unknown)}")
        return create_model(name, **kwargs), keys

    return build


def _build_lan(kwargs: Mapping):
    unknown = set(kwargs) - {"blindspot", "in_ch", "out_ch", "rbs"}
    if unknown:
        raise ValueError(f"ssid_lan: unsupported original arguments {sorted(unknown)}")
    kw = {k: v for k, v in kwargs.items() if k != "rbs" and v is not None}
    if "rbs" in kwargs:
        kw["blocks"] = kwargs["rbs"]
    bs = kwargs.get("blindspot", 3)
    return create_model("ssid_lan", **kw), lambda key: _ssid_lan_keys(key, bs)


def _dbsnl_keys(key: str, prefix: str = "") -> str | None:
    """AP-BSN's DBSNl names (head.0, branchN.body.i..., tail.i) -> :class:`DBSNl` names."""
    if not key.startswith(prefix):
        return None
    key = key[len(prefix) :]
    m = re.fullmatch(r"head\.0\.(weight|bias)", key)
    if m:
        return f"{prefix}head.{m[1]}"
    m = re.fullmatch(r"tail\.(\d)\.(weight|bias)", key)
    if m:
        return f"{prefix}tail.{int(m[1]) // 2}.{m[2]}"
    m = re.fullmatch(r"branch([12])\.body\.(\d+)\.(.+)", key)
    if not m:
        return None
    branch, idx, rest = f"{prefix}branches.{int(m[1]) - 1}", int(m[2]), m[3]
    if idx == 0:
        return None if rest == "mask" else f"{branch}.masked.{rest}"  # our mask is rebuilt
    if idx in (2, 4):
        return f"{branch}.conv{idx // 2}.{rest}"
    sub = re.fullmatch(r"body\.([02])\.(weight|bias)", rest)
    if sub:
        return f"{branch}.blocks.{idx - 6}.{'dilated' if sub[1] == '0' else 'pointwise'}.{sub[2]}"
    return f"{branch}.out.{rest}"


def _build_dbsnl(kwargs: Mapping):
    unknown = set(kwargs) - {"in_ch", "out_ch", "base_ch", "num_module"}
    if unknown:
        raise ValueError(f"apbsn_dbsnl: unsupported original arguments {sorted(unknown)}")
    return create_model("apbsn_dbsnl", **kwargs), _dbsnl_keys


def _build_apbsn(kwargs: Mapping):
    kw = dict(kwargs)
    if kw.pop("bsn", "DBSNl") != "DBSNl":
        raise ValueError(f"apbsn: only bsn='DBSNl' is supported, got {kwargs.get('bsn')!r}")
    names = {
        "pd_a": "pd_train",
        "pd_b": "pd_infer",
        "pd_pad": "pd_pad",
        "R3": "r3",
        "R3_T": "r3_t",
        "R3_p": "r3_p",
    }
    bsn = {
        "in_ch": kw.pop("in_ch", 3),
        "base_ch": kw.pop("bsn_base_ch", 128),
        "num_module": kw.pop("bsn_num_module", 9),
    }
    bsn["out_ch"] = bsn["in_ch"]
    unknown = set(kw) - set(names)
    if unknown:
        raise ValueError(f"apbsn: unsupported original arguments {sorted(unknown)}")
    model = create_model("apbsn", bsn="apbsn_dbsnl", bsn_kwargs=bsn, **{names[k]: v for k, v in kw.items()})
    return model, lambda key: _dbsnl_keys(key, "bsn.")


_LGBPN_RENAMES = (
    ("bsn.branch1.Maskconv.", "bsn.local.masked."),
    ("bsn.branch2.Maskconv.", "bsn.global_.masked."),
    ("bsn.branch1.body.", "bsn.local.body."),
    ("bsn.branch2.body.encoder_level1.", "bsn.global_.body.blocks."),
    ("bsn.branch2.body.output.", "bsn.global_.body.out."),
    (".norm1.body.", ".norm1."),
    (".norm2.body.", ".norm2."),
    (".attn.qkv_dwconv.", ".attn.qkv_dw."),
    (".attn.project_out.", ".attn.project."),
    (".ffn.dwconv.", ".ffn.dw."),
)


def _lgbpn_keys(key: str) -> str | None:
    """LG-BPN's BSN/LGBPN names -> :class:`LGBPNDenoiser` names (test_conv aliases dropped)."""
    if ".test_conv." in key or key.endswith(".mask"):
        return None
    if key.startswith("bsn.head.0."):
        return key.replace("bsn.head.0.", "bsn.head.", 1)
    m = re.fullmatch(r"bsn\.tail\.(\d)\.(weight|bias)", key)
    if m:
        return f"bsn.tail.{int(m[1]) // 2}.{m[2]}"
    for old, new in _LGBPN_RENAMES:
        key = key.replace(old, new)
    m = re.fullmatch(r"(bsn\.local\.body\.\d+)\.body\.([02])\.(weight|bias)", key)
    if m:
        return f"{m[1]}.{'dilated' if m[2] == '0' else 'pointwise'}.{m[3]}"
    return key


def _build_lgbpn(kwargs: Mapping):
    kw = dict(kwargs)
    if kw.pop("bsn", "My_BSN") != "My_BSN" or not kw.pop("SIDD", True):
        raise ValueError("lgbpn: only bsn='My_BSN' with the SIDD settings is supported")
    if kw.pop("in_ch", 3) != 3:
        raise ValueError("lgbpn: only 3-channel input is supported")
    kw.pop("pd_a", None), kw.pop("pd_b", None)  # PD factors live in the branches (fixed for SIDD)
    names = {"pd_pad": "pad", "R3": "r3", "R3_T": "r3_t", "R3_p": "r3_p"}
    model_kw = {"width": kw.pop("bsn_base_ch", 128), "modules": kw.pop("bsn_num_module", 9)}
    unknown = set(kw) - set(names)
    if unknown:
        raise ValueError(f"lgbpn: unsupported original arguments {sorted(unknown)}")
    model = create_model("lgbpn", **model_kw, **{names[k]: v for k, v in kw.items() if k != "pd_pad"})
    model.pad = kw.get("pd_pad", 2)
    return model, _lgbpn_keys


# original constructor -> builder(kwargs) returning (module, key translator)
CONVERTERS: dict[str, Callable] = {
    "network.bnn.BNN": _build_ssid("ssid_bnn", _ssid_bnn_keys, ("blindspot", "in_ch", "out_ch", "dim")),
    "network.unet.UNet": _build_ssid("ssid_unet", _ssid_unet_only_keys, ("in_ch", "out_ch", "dim")),
    "network.lan.LAN": _build_lan,
    "src.model.DBSNl.DBSNl": _build_dbsnl,
    "src.model.APBSN.APBSN": _build_apbsn,
    "src.model.APBSN.BSN": _build_lgbpn,
}


def from_original(constructor: str, kwargs: Mapping, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """The registered module equivalent to ``constructor(**kwargs)``, with ``state_dict`` loaded.

    Raises:
        KeyError: an unknown constructor (the message lists the supported ones).
        ValueError: unsupported arguments, or keys that do not match the module.
    """
    try:
        build = CONVERTERS[constructor]
    except KeyError:
        raise KeyError(
            f"no converter for {constructor!r}; supported: {', '.join(sorted(CONVERTERS))}"
        ) from None
    module, keys = build(dict(kwargs))
    converted, unused = {}, []
    for key, value in state_dict.items():
        new = keys(key)
        if new is None:
            if not key.startswith("output_conv.") and not key.endswith(".mask") and ".test_conv." not in key:
                unused.append(key)
            continue
        converted[new] = value.contiguous()
    own = module.state_dict()
    for key in own:  # masks are part of the architecture here; the module's own are kept
        if key.endswith(".mask") and key not in converted:
            converted[key] = own[key]
    missing = set(own) - set(converted)
    extra = set(converted) - set(own)
    if unused or missing or extra:
        raise ValueError(
            f"{constructor}: state dict does not match: unknown keys {sorted(unused + list(extra))[:8]}, "
            f"missing {sorted(missing)[:8]}"
        )
    module.load_state_dict(converted)
    return module
