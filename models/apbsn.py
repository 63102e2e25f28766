"""AP-BSN: a dilated blind-spot network (DBSNl) behind asymmetric pixel-shuffle down-sampling.

- :class:`DBSNl`: a 1x1 head, two branches (a centre-masked 3x3 or 5x5 convolution, then
  convolutions dilated by 2 or 3 that keep the centre hidden), a 1x1 tail. The output at a pixel
  does not see that pixel.
- :class:`APBSN`: PD with factor ``pd_train`` (5) around any blind-spot network in training; at
  inference PD with ``pd_infer`` (2), then optionally R3 (random-replacing refinement): ``r3_t``
  times, replace a random ``r3_p`` of the pixels by the noisy input and run the network at full
  resolution; average.

Raw 0..255 sRGB values, (B, 3, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models import masks
from models.layers.dilated import DilatedConvLayer
from models.layers.masked_conv import MaskedConv2d, centre_mask
from models.layers.pixel_shuffle import pd_down, pd_up
from models.layers.r3 import crop, refine
from models.layers.skip import Skip
from models.registry import create_model, register_model, square

__all__ = ["DBSNl", "APBSN"]


class _Branch(nn.Module):
    """Centre-masked (2d-1)x(2d-1) convolution, two 1x1 convolutions, dilated blocks, a 1x1 out."""

    def __init__(self, width: int, d: int, modules: int):
        super().__init__()
        self.masked = MaskedConv2d(width, width, centre_mask(2 * d - 1))
        self.conv1, self.conv2 = nn.Conv2d(width, width, 1), nn.Conv2d(width, width, 1)
        self.blocks = nn.Sequential(*(DilatedConvLayer(width, d) for _ in range(modules)))
        self.out = nn.Conv2d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ReLUs in place on convolution outputs, which the convolutions' backward passes do not need
        h = torch.relu_(self.conv2(torch.relu_(self.conv1(torch.relu_(self.masked(x))))))
        return torch.relu_(self.out(self.blocks(h)))


class DBSNl(nn.Module):
    """AP-BSN's blind-spot network.

    Args:
        in_ch, out_ch: channels.
        base_ch: width (128 in AP-BSN; even).
        num_module: dilated blocks per branch (9).
    """

    def __init__(self, *, in_ch: int = 3, out_ch: int = 3, base_ch: int = 128, num_module: int = 9):
        super().__init__()
        if base_ch % 2:
            raise ValueError(f"base_ch must be even, got {base_ch}")
        self.head = nn.Conv2d(in_ch, base_ch, 1)
        self.branches = nn.ModuleList(_Branch(base_ch, d, num_module) for d in (2, 3))
        widths = (2 * base_ch, base_ch, base_ch // 2, base_ch // 2, out_ch)
        self.tail = nn.ModuleList(nn.Conv2d(a, b, 1) for a, b in zip(widths[:-1], widths[1:], strict=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu_(self.head(x))
        h = torch.cat([branch(h) for branch in self.branches], 1)
        for conv in self.tail[:-1]:
            h = torch.relu_(conv(h))
        return self.tail[-1](h)


class APBSN(nn.Module):
    """Asymmetric PD around a blind-spot network.

    Args:
        bsn: the blind-spot network (any module mapping (B, C, H, W) to the same shape).
        pd_train: PD factor of :meth:`forward` (training), 5.
        pd_infer: PD factor of :meth:`denoise`, 2.
        pd_pad: zero padding around each sub-image (and the reflect padding of R3), 2.
        r3: whether :meth:`denoise` refines; ``r3_t`` passes replacing a fraction ``r3_p``.
    """

    def __init__(
        self,
        bsn: nn.Module,
        *,
        pd_train: int = 5,
        pd_infer: int = 2,
        pd_pad: int = 2,
        r3: bool = True,
        r3_t: int = 8,
        r3_p: float = 0.16,
    ):
        super().__init__()
        self.bsn = bsn
        self.pd_train, self.pd_infer, self.pd_pad = pd_train, pd_infer, pd_pad
        self.r3, self.r3_t, self.r3_p = r3, r3_t, r3_p

    @property
    def random_inference(self) -> bool:
        """Whether :meth:`denoise` draws random numbers (R3's masks)."""
        return self.r3

    def forward(self, x: torch.Tensor, *, pd: int | None = None) -> torch.Tensor:
        f = self.pd_train if pd is None else pd
        p = self.pd_pad
        if f > 1:
            return pd_up(self.bsn(pd_down(x, f, pad=p)), f, pad=p)
        return crop(self.bsn(F.pad(x, (p, p, p, p))), p)

    def denoise(self, x: torch.Tensor, *, masks: torch.Tensor | None = None) -> torch.Tensor:
        """Inference: PD with ``pd_infer`` (zero-padding H and W up to multiples of it), then R3.

        Args:
            masks: optional (r3_t, B, C, H, W) booleans to use instead of drawing
                ``torch.rand_like(x) < r3_p`` (drawn in order, so a seed reproduces them).
        """
        h, w = x.shape[-2:]
        f = self.pd_infer
        x = F.pad(x, (0, (-w) % f, 0, (-h) % f))
        first = self.forward(x, pd=f)
        if not self.r3:
            return first[..., :h, :w]
        refined = refine(x, first, self.bsn, passes=self.r3_t, p=self.r3_p, pad=self.pd_pad, masks=masks)
        return refined[..., :h, :w]


@register_model("apbsn_dbsnl", test_kwargs={"base_ch": 8, "num_module": 2}, blind=lambda kw: square(1))
def apbsn_dbsnl(
    *, in_ch: int = 3, out_ch: int = 3, base_ch: int = 128, num_module: int = 9, skip: bool = False
) -> nn.Module:
    """AP-BSN's DBSNl (3,656,131 parameters at the defaults). ``skip``: plus the mean of the
    centre's eight neighbours (:class:`models.layers.skip.Skip`): inside AP-BSN, the
    neighbours in the pixel-shuffled sub-image in training and at inference, the image's own in R3."""
    net = DBSNl(in_ch=in_ch, out_ch=out_ch, base_ch=base_ch, num_module=num_module)
    return Skip(net, square(1)) if skip else net


# In training every pixel is predicted from the other pixels of its pixel-shuffled sub-image and
# their neighbours in the mosaic, never from itself: the centre is blind.
@register_model(
    "apbsn",
    test_kwargs={"bsn_kwargs": {"base_ch": 8, "num_module": 2}, "pd_train": 2, "pd_pad": 1},
    multiple=lambda kw: kw.get("pd_train", 5),
    blind=lambda kw: square(1),
    fit=lambda region: {"pd_train": masks.chebyshev_radius(region) + 1},
)
def apbsn(
    *,
    bsn: str = "apbsn_dbsnl",
    bsn_kwargs: dict | None = None,
    pd_train: int = 5,
    pd_infer: int = 2,
    pd_pad: int = 2,
    r3: bool = True,
    r3_t: int = 8,
    r3_p: float = 0.16,
) -> APBSN:
    """AP-BSN around the registered blind-spot network ``bsn`` built with ``bsn_kwargs``."""
    return APBSN(
        create_model(bsn, **(bsn_kwargs or {})),
        pd_train=pd_train,
        pd_infer=pd_infer,
        pd_pad=pd_pad,
        r3=r3,
        r3_t=r3_t,
        r3_p=r3_p,
    )
