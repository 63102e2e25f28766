"""LG-BPN: local and global blind-patch networks, fused.

- Local branch: a 9x9 patch-masked convolution (the blind region hidden, LG-BPN's radius-4
  diamond by default), pixel-shuffle down-sampling, dilated convolution layers (DCL).
- Global branch: a 21x21 masked convolution that keeps only taps on a stride-2 lattice outside the
  blind region, pixel-shuffle down-sampling, dilated transformer blocks (DTB).
- Fusion of the two branches (concatenation, or their average), then 1x1 convolutions.

Training uses the masks; inference shrinks each masked kernel towards its centre ("kernel
shift", :mod:`models.layers.kernel_shift`) and uses other PD factors; :meth:`LGBPNDenoiser.denoise`
adds R3 refinement. The blind region is data (``blind``): any (2r+1)^2 boolean array, e.g. one
derived from a noise-correlation map by :func:`models.masks.from_correlation`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models import masks
from models.layers.dilated import DilatedConvLayer
from models.layers.dtb import DTB, checkpoint_call
from models.layers.kernel_shift import shifted_conv
from models.layers.masked_conv import MaskedConv2d
from models.layers.pixel_shuffle import pd_down, pd_up
from models.layers.r3 import refine
from models.layers.skip import Skip
from models.registry import blind_region, common_region, create_model, register_model, square
from models.ssid import BNN

__all__ = [
    "BNNBranch",
    "BranchPD",
    "LocalBranch",
    "GlobalBranch",
    "LGBPN",
    "LGBPNDenoiser",
    "local_taps",
    "global_taps",
]


def local_taps(blind: np.ndarray, size: int = 9) -> torch.Tensor:
    """Active taps of the local kernel: everything outside the blind region."""
    return torch.from_numpy(masks.kernel_taps(blind, size)).float()


def _local_masked(in_ch: int, width: int, blind: np.ndarray | None) -> MaskedConv2d:
    """The local branch's 9x9 masked convolution (reflect padding); the diamond by default."""
    blind = masks.diamond(4) if blind is None else blind
    return MaskedConv2d(in_ch, width, local_taps(blind), padding_mode="reflect")


def global_taps(blind: np.ndarray, size: int = 21, step: int = 2) -> torch.Tensor:
    """Active taps of the global kernel: a stride-``step`` lattice, minus the blind region."""
    lattice = np.zeros((size, size))
    lattice[::step, ::step] = 1.0
    return torch.from_numpy(lattice * masks.kernel_taps(blind, size)).float()


@dataclass(frozen=True)
class BranchPD:
    """How a branch down-samples in each mode: PD factor, sub-image padding, kernel-shift ratio.

    Training tiles the sub-images into a zero-padded mosaic; inference stacks them in the batch,
    reflect-padded.
    """

    train: int
    test: int
    refine: int
    train_pad: int
    test_pad: int
    test_ratio: float
    refine_ratio: float


def _shifted(pd: BranchPD, factor: float) -> BranchPD:
    """``pd`` with its test and refinement kernel-shift ratios multiplied by ``factor``."""
    if factor == 1:
        return pd
    return dataclasses.replace(pd, test_ratio=pd.test_ratio * factor, refine_ratio=pd.refine_ratio * factor)


LOCAL_PD = BranchPD(train=4, test=3, refine=2, train_pad=2, test_pad=2, test_ratio=0.72, refine_ratio=0.46)
GLOBAL_PD = BranchPD(train=5, test=4, refine=4, train_pad=0, test_pad=7, test_ratio=0.80, refine_ratio=0.43)


class _Branch(nn.Module):
    """Masked convolution -> PD -> body -> inverse PD, with the mode-dependent details."""

    def __init__(self, masked: MaskedConv2d, body: nn.Module, pd: BranchPD):
        super().__init__()
        self.masked, self.body, self.pd = masked, body, pd
        self.checkpoint = False  # activation checkpointing of the body in training (see LGBPN)

    def _run_body(self, x: torch.Tensor) -> torch.Tensor:
        if not self.checkpoint:
            return self.body(x)
        if isinstance(self.body, DTB):
            return self.body(x, checkpoint=True)
        for layer in self.body:  # a Sequential: recompute the layers that hold weights
            x = checkpoint_call(layer, x) if next(layer.parameters(), None) is not None else layer(x)
        return x

    def forward(self, x: torch.Tensor, *, refine: bool = False) -> torch.Tensor:
        pd = self.pd
        f = pd.train if self.training else (pd.refine if refine else pd.test)
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % f, 0, (-h) % f), mode="reflect")  # bottom/right to a multiple of f
        if self.training:
            y = self.masked(x)
            y = pd_up(self._run_body(pd_down(y, f, pad=pd.train_pad)), f, pad=pd.train_pad)
        else:
            ratio = pd.refine_ratio if refine else pd.test_ratio
            y = shifted_conv(x, self.masked.weight * self.masked.mask, self.masked.bias, ratio)
            if f > 1:
                down = pd_down(y, f, pad=pd.test_pad, mode="reflect", mosaic=False)
                y = pd_up(self.body(down), f, pad=pd.test_pad, mosaic=False)
            else:
                y = self.body(y)
        return y[..., :h, :w]


class LocalBranch(_Branch):
    """LG-BPN's local branch.

    Args:
        in_ch: channels in (the head's); width: channels of the branch.
        blind: blind region (square boolean array); LG-BPN's radius-4 diamond by default.
        modules: DCL count (9); dilation 2.
    """

    def __init__(
        self,
        in_ch: int,
        width: int,
        *,
        blind: np.ndarray | None = None,
        modules: int = 9,
        pd: BranchPD = LOCAL_PD,
    ):
        masked = _local_masked(in_ch, width, blind)
        body = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(width, width, 1),
            nn.ReLU(),
            nn.Conv2d(width, width, 1),
            nn.ReLU(),
            *(DilatedConvLayer(width, 2) for _ in range(modules)),
            nn.Conv2d(width, width, 1),
            nn.ReLU(),
        )
        super().__init__(masked, body, pd)


class GlobalBranch(_Branch):
    """LG-BPN's global branch.

    Args:
        in_ch: channels in; width: channels of the branch.
        blind: blind region; the radius-4 diamond by default.
        blocks: DTB blocks (6); dilation 3.
    """

    def __init__(
        self,
        in_ch: int,
        width: int,
        *,
        blind: np.ndarray | None = None,
        blocks: int = 6,
        pd: BranchPD = GLOBAL_PD,
    ):
        blind = masks.diamond(4) if blind is None else blind
        masked = MaskedConv2d(in_ch, width, global_taps(blind), padding_mode="reflect")
        super().__init__(masked, DTB(width, blocks=blocks, d=3), pd)


class LGBPN(nn.Module):
    """Head, branches, fusion, tail. Either branch may be None (the L-4 and L-5 ablations) or any
    module with ``forward(x, refine=...)`` of the right width (L-1: SSID's BNN in place of the
    local branch, wrapped to that signature).

    Args:
        local, global_: the branches.
        head_ch: 1x1 head width (24 in LG-BPN); width: branch width.
        fusion: ``concat`` (LG-BPN) or ``average`` (L-2).
    """

    def __init__(
        self,
        local: nn.Module | None,
        global_: nn.Module | None,
        *,
        in_ch: int = 3,
        out_ch: int = 3,
        head_ch: int = 24,
        width: int = 128,
        fusion: str = "concat",
    ):
        super().__init__()
        if fusion not in ("concat", "average"):
            raise ValueError(f"fusion must be 'concat' or 'average', got {fusion!r}")
        if local is None and global_ is None:
            raise ValueError("LG-BPN needs at least one branch")
        self.head = nn.Conv2d(in_ch, head_ch, 1)
        self.local, self.global_, self.fusion = local, global_, fusion
        n = 2 if fusion == "concat" and local is not None and global_ is not None else 1
        widths = (n * width, width, width // 2, width // 2, out_ch)
        self.tail = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(widths[:-1], widths[1:], strict=True))

    def forward(self, x: torch.Tensor, *, refine: bool = False) -> torch.Tensor:
        h = torch.relu(self.head(x))
        outs = [b(h, refine=refine) for b in (self.local, self.global_) if b is not None]
        h = torch.cat(outs, 1) if self.fusion == "concat" else torch.stack(outs).mean(0)
        for conv in self.tail[:-1]:
            h = torch.relu(conv(h))
        return self.tail[-1](h)


class LGBPNDenoiser(nn.Module):
    """LG-BPN with its inference procedure: an eval pass, then optional R3 refinement.

    Args:
        bsn: the :class:`LGBPN`.
        r3, r3_t, r3_p, pad: R3 as in AP-BSN (8 passes replacing 16 %), each pass on the image
            reflect-padded by ``pad`` with the branches in their refine setting.
    """

    def __init__(self, bsn: LGBPN, *, r3: bool = True, r3_t: int = 8, r3_p: float = 0.16, pad: int = 2):
        super().__init__()
        self.bsn, self.r3, self.r3_t, self.r3_p, self.pad = bsn, r3, r3_t, r3_p, pad

    @property
    def random_inference(self) -> bool:
        """Whether :meth:`denoise` draws random numbers (R3's masks)."""
        return self.r3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bsn(x)

    def denoise(self, x: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        first = self.bsn(x)
        if not self.r3:
            return first
        return refine(
            x,
            first,
            lambda z: self.bsn(z, refine=True),
            passes=self.r3_t,
            p=self.r3_p,
            pad=self.pad,
            masks=masks,
        )


class BNNBranch(nn.Module):
    """SSID's blind-neighbourhood network as an LG-BPN branch (the L-1 ablation).

    It maps the head's features to the branch width, hides a ``blindspot`` square (the side of the
    configured blind region) and zero-pads inputs to multiples of 32.
    """

    def __init__(self, in_ch: int, width: int, *, blindspot: int = 9, dim: int = 48):
        super().__init__()
        self.bnn = BNN(blindspot=blindspot, in_ch=in_ch, out_ch=width, dim=dim)

    def forward(self, x: torch.Tensor, *, refine: bool = False) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, (-w) % 32, 0, (-h) % 32))  # zeros: a reflection would show pixels twice
        return torch.relu(self.bnn(x))[..., :h, :w]


def _mask(kw) -> np.ndarray:
    return masks.diamond(4) if kw.get("blind") is None else np.asarray(kw["blind"], dtype=bool)


def _bnn_side(kw) -> int:
    return 9 if kw.get("blind") is None else int(np.asarray(kw["blind"]).shape[0])


@register_model(
    "ssid_bnn_branch", test_kwargs={"in_ch": 3, "width": 4, "dim": 8}, blind=lambda kw: square(_bnn_side(kw))
)
def ssid_bnn_branch(
    *, in_ch: int = 24, width: int = 128, blind: np.ndarray | None = None, modules: int = 9, dim: int = 48
) -> BNNBranch:
    """SSID's BNN in LG-BPN's local slot; its blind square has the side of ``blind`` (9 by default).
    ``modules`` is accepted for interface compatibility with the local branch and unused."""
    return BNNBranch(in_ch, width, blindspot=_bnn_side({"blind": blind}), dim=dim)


@register_model(
    "lgbpn_local", test_kwargs={"in_ch": 3, "width": 8, "modules": 1}, multiple=LOCAL_PD.train, blind=_mask
)
def lgbpn_local(
    *, in_ch: int = 24, width: int = 128, blind: np.ndarray | None = None, modules: int = 9
) -> LocalBranch:
    return LocalBranch(in_ch, width, blind=blind, modules=modules)


# Its transformer blocks' channel attention pools over the whole image: exact blindness is
# checked without them (models.registry.ModelInfo.blind_kwargs).
@register_model(
    "lgbpn_local_dtb",
    test_kwargs={"in_ch": 3, "width": 4, "modules": 1},
    multiple=LOCAL_PD.train,
    blind=_mask,
    blind_kwargs={"modules": 0},
)
def lgbpn_local_dtb(
    *, in_ch: int = 24, width: int = 128, blind: np.ndarray | None = None, modules: int = 3
) -> _Branch:
    """The local branch with ``modules`` dilated transformer blocks (dilation 2) instead of DCLs (L-3)."""
    return _Branch(_local_masked(in_ch, width, blind), DTB(width, blocks=modules, d=2), LOCAL_PD)


@register_model(
    "lgbpn_global",
    test_kwargs={"in_ch": 3, "width": 4, "blocks": 1},
    multiple=GLOBAL_PD.train,
    blind=_mask,
    blind_kwargs={"blocks": 0},
)
def lgbpn_global(
    *, in_ch: int = 24, width: int = 128, blind: np.ndarray | None = None, blocks: int = 6
) -> GlobalBranch:
    return GlobalBranch(in_ch, width, blind=blind, blocks=blocks)


def _lgbpn_blind(kw) -> np.ndarray | None:
    """What neither branch sees: each branch's region, as the registry gives it."""
    parts = []
    for slot, default in (("local", "lgbpn_local"), ("global_", "lgbpn_global")):
        name = kw.get(slot, default)
        if name:
            parts.append(
                blind_region(name, {"blind": kw.get("blind"), **(kw.get(f"{slot.rstrip('_')}_kwargs") or {})})
            )
    return common_region(*parts)


@register_model(
    "lgbpn",
    test_kwargs={"width": 8, "head_ch": 4, "modules": 1, "blocks": 1},
    multiple=LOCAL_PD.train * GLOBAL_PD.train,
    blind=_lgbpn_blind,
    blind_kwargs={"blocks": 0},
)
def lgbpn(
    *,
    local: str | None = "lgbpn_local",
    global_: str | None = "lgbpn_global",
    width: int = 128,
    head_ch: int = 24,
    modules: int = 9,
    blocks: int = 6,
    fusion: str = "concat",
    blind: np.ndarray | None = None,
    r3: bool = True,
    r3_t: int = 8,
    r3_p: float = 0.16,
    local_kwargs: dict | None = None,
    global_kwargs: dict | None = None,
    checkpoint: bool = False,
    skip: bool = False,
    kernel_shift: float = 1.0,
) -> LGBPNDenoiser:
    """LG-BPN (4,558,879 parameters at the defaults). Branches are registered names (or None);
    ``local_kwargs`` / ``global_kwargs`` go to their builders (e.g. ``{"dim": 16}`` for L-1's BNN).
    ``checkpoint``: activation checkpointing of the branch bodies in training (each DCL and DTB
    block recomputed in the backward pass): the same outputs and gradients for a fraction of
    the training-step memory, at the cost of a second forward pass through the bodies.
    ``skip``: plus the mean of the ring around the blind region, shrunk at inference as the local
    branch's kernel is (:class:`models.layers.skip.Skip`; the same parameters). ``kernel_shift``
    multiplies both branches' test and refinement kernel-shift ratios (1: SIDD's 0.72 / 0.46 local,
    0.80 / 0.43 global; smaller: closer pixels at inference, as AP-BSN's smaller stride there)."""
    if not 0 < kernel_shift <= 1:
        raise ValueError(f"kernel_shift must be in (0, 1], got {kernel_shift}")
    lkw = {"in_ch": head_ch, "width": width, "blind": blind, "modules": modules, **(local_kwargs or {})}
    gkw = {"in_ch": head_ch, "width": width, "blind": blind, "blocks": blocks, **(global_kwargs or {})}
    lb = create_model(local, **lkw) if local else None
    gb = create_model(global_, **gkw) if global_ else None
    for branch in (lb, gb):
        if isinstance(branch, _Branch):
            branch.checkpoint = checkpoint
            branch.pd = _shifted(branch.pd, kernel_shift)
    net: nn.Module = LGBPN(lb, gb, head_ch=head_ch, width=width, fusion=fusion)
    if skip:
        slots = {"local": local, "global_": global_, "blind": blind}
        region = _lgbpn_blind({**slots, "local_kwargs": local_kwargs, "global_kwargs": global_kwargs})
        local = _shifted(LOCAL_PD, kernel_shift)
        net = Skip(net, region, ratios=(local.test_ratio, local.refine_ratio))
    return LGBPNDenoiser(net, r3=r3, r3_t=r3_t, r3_p=r3_p)
