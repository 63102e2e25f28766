"""SSID (spatially adaptive self-supervised denoising): BNN, LAN and the stage-3 UNet.

- :class:`BNN`, the blind-neighbourhood network: a 5-level U-Net of upward-looking convolutions run
  on the four 90-degree rotations of the input, each shifted down before being rotated back and
  fused by 1x1 convolutions; the output at a pixel never sees the input in the
  ``blindspot`` x ``blindspot`` square around it (9 by default).
- :class:`LAN`, the locally aware network: it sees only a ``blindspot`` x ``blindspot``
  neighbourhood (3 by default) and is trained to imitate the BNN there.
- :class:`UNet`: the same U-Net with ordinary convolutions, the final denoiser.

All work on raw 0..255 sRGB values, (B, 3, H, W); BNN and UNet need H and W multiples of 32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from models import masks
from models.layers.shift import ShiftConv2d, shift_down
from models.layers.skip import Skip
from models.layers.upconv import upsampled_conv3x3
from models.registry import register_model, square

__all__ = ["BNN", "LAN", "UNet", "UNetBody"]


def _plain_conv(in_ch: int, out_ch: int, kernel_size: int = 3) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)


class UNetBody(nn.Module):
    """The Laine et al. U-Net shared by BNN and UNet: 5 poolings, nearest up-sampling, skips.

    Args:
        in_ch: input channels.
        dim: encoder width; the decoder is 2 * dim wide.
        conv: builds a 3x3 convolution (ordinary, or upward-looking for the BNN).
        pool_shift: rows to move features down before each pooling (1 keeps the BNN blind).
    """

    def __init__(self, in_ch: int, dim: int, conv: Callable[..., nn.Module], pool_shift: int = 0):
        super().__init__()
        self.pool_shift = pool_shift
        self.enc1a, self.enc1b = conv(in_ch, dim), conv(dim, dim)
        self.enc = nn.ModuleList(conv(dim, dim) for _ in range(5))  # levels 2..6
        self.dec5a, self.dec5b = conv(2 * dim, 2 * dim), conv(2 * dim, 2 * dim)
        self.dec_a = nn.ModuleList(conv(3 * dim, 2 * dim) for _ in range(3))  # levels 4, 3, 2
        self.dec_b = nn.ModuleList(conv(2 * dim, 2 * dim) for _ in range(3))
        self.dec1a, self.dec1b = conv(2 * dim + in_ch, 2 * dim), conv(2 * dim, 2 * dim)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(shift_down(x, self.pool_shift), 2)

    def _up_conv(self, h: torch.Tensor, skip: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        """``conv(cat(nearest_up2(h), skip))``, the up-sampled part computed at h's resolution."""
        rows = (-2, -1, 0) if isinstance(conv, ShiftConv2d) else (-1, 0, 1)
        return upsampled_conv3x3(h, skip, conv.weight, conv.bias, row_offsets=rows)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def act(t: torch.Tensor) -> torch.Tensor:
            return F.leaky_relu(t, 0.1, inplace=True)

        skips = [x]  # (B, in, H, W)
        h = self._pool(act(self.enc1b(act(self.enc1a(x)))))
        for level in range(4):  # levels 2..5 pool; level 6 does not
            skips.append(h)
            h = self._pool(act(self.enc[level](h)))
        h = act(self.enc[4](h))  # (B, dim, H/32, W/32)
        h = act(self.dec5b(act(self._up_conv(h, skips[4], self.dec5a))))
        for i, skip in enumerate((skips[3], skips[2], skips[1])):
            h = act(self.dec_b[i](act(self._up_conv(h, skip, self.dec_a[i]))))
        return act(self.dec1b(act(self._up_conv(h, skips[0], self.dec1a))))  # (B, 2 dim, H, W)


def _kaiming(module: nn.Module, last: nn.Conv2d) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, a=0.1)
            nn.init.zeros_(m.bias)
    nn.init.kaiming_normal_(last.weight, nonlinearity="linear")


def _check_size(x: torch.Tensor) -> None:
    if x.shape[-2] % 32 or x.shape[-1] % 32:
        raise ValueError(f"input height and width must be multiples of 32, got {tuple(x.shape[-2:])}")


class BNN(nn.Module):
    """Blind-neighbourhood network.

    Args:
        blindspot: odd side of the hidden square around each pixel (9: a 9x9 square).
        in_ch, out_ch: channels.
        dim: encoder width (48 in SSID).
    """

    def __init__(self, *, blindspot: int = 9, in_ch: int = 3, out_ch: int = 3, dim: int = 48):
        super().__init__()
        if blindspot < 1 or blindspot % 2 == 0:
            raise ValueError(f"blindspot must be odd and positive, got {blindspot}")
        self.blindspot = blindspot
        self.body = UNetBody(in_ch, dim, ShiftConv2d, pool_shift=1)
        self.fuse1 = nn.Conv2d(8 * dim, 8 * dim, 1)
        self.fuse2 = nn.Conv2d(8 * dim, 2 * dim, 1)
        self.out = nn.Conv2d(2 * dim, out_ch, 1)
        _kaiming(self, self.out)

    # The four rotations are stacked along the batch, so height and width must be equal; tiled
    # inference pads other shapes to a square first.
    square_input = True

    def forward(self, x: torch.Tensor, *, shift: int | None = None) -> torch.Tensor:
        _check_size(x)
        b = x.shape[0]
        rows = (self.blindspot + 1) // 2 if shift is None else shift
        # The four rotations share one pass through the body, stacked along the batch.
        stacked = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)], 0)
        feats = shift_down(self.body(stacked), rows)  # (4B, 2 dim, H, W)
        back = [torch.rot90(feats[k * b : (k + 1) * b], -k, dims=(2, 3)) for k in range(4)]
        h = torch.cat(back, 1)  # (B, 8 dim, H, W)
        h = F.leaky_relu(self.fuse1(h), 0.1)
        h = F.leaky_relu(self.fuse2(h), 0.1)
        return self.out(h)


class UNet(nn.Module):
    """The stage-3 denoiser: :class:`UNetBody` with ordinary convolutions and a 1x1 output.

    Args:
        in_ch, out_ch: channels.
        dim: encoder width (48 in SSID).
    """

    def __init__(self, *, in_ch: int = 3, out_ch: int = 3, dim: int = 48):
        super().__init__()
        self.body = UNetBody(in_ch, dim, _plain_conv, pool_shift=0)
        self.out = nn.Conv2d(2 * dim, out_ch, 1)
        _kaiming(self, self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x)
        return self.out(self.body(x))


class _AttentionBlock(nn.Module):
    """1x1 conv, ReLU, 1x1 conv, channel attention (squeeze to width/16), plus the input."""

    def __init__(self, width: int, reduction: int = 16):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(width, width, 1), nn.Conv2d(width, width, 1)
        self.squeeze = nn.Conv2d(width, width // reduction, 1)
        self.excite = nn.Conv2d(width // reduction, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(torch.relu_(self.conv1(x)))
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(h.mean((2, 3), keepdim=True)))))
        return h * gate + x


class LAN(nn.Module):
    """Locally aware network: sees exactly the ``blindspot`` x ``blindspot`` neighbourhood.

    Args:
        blindspot: odd receptive-field side (3 in SSID): blindspot // 2 3x3 convolutions.
        in_ch, out_ch: channels.
        width: hidden channels (64).
        blocks: attention blocks (6).
    """

    def __init__(
        self, *, blindspot: int = 3, in_ch: int = 3, out_ch: int = 3, width: int = 64, blocks: int = 6
    ):
        super().__init__()
        if blindspot < 1 or blindspot % 2 == 0:
            raise ValueError(f"blindspot must be odd and positive, got {blindspot}")
        self.head = nn.Conv2d(in_ch, width, 1)
        self.local = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(blindspot // 2))
        self.blocks = nn.Sequential(*(_AttentionBlock(width) for _ in range(blocks)))
        self.blocks_tail = nn.Conv2d(width, width, 1)
        self.out = nn.Conv2d(width, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu_(self.head(x))  # in place on convolution outputs, as in the U-Nets
        for conv in self.local:
            h = torch.relu_(conv(h))
        h = h + self.blocks_tail(self.blocks(h))
        return self.out(h)


@register_model(
    "ssid_bnn",
    test_kwargs={"dim": 8},
    multiple=32,
    blind=lambda kw: square(kw.get("blindspot", 9)),
    fit=lambda region: {"blindspot": 2 * masks.chebyshev_radius(region) + 1},
)
def ssid_bnn(
    *, blindspot: int = 9, in_ch: int = 3, out_ch: int = 3, dim: int = 48, skip: bool = False
) -> nn.Module:
    """SSID's stage-1 blind-neighbourhood network (1,268,547 parameters at the defaults).
    ``skip``: plus the mean of the square ring around its blind square
    (:class:`models.layers.skip.Skip`; the same parameters)."""
    bnn = BNN(blindspot=blindspot, in_ch=in_ch, out_ch=out_ch, dim=dim)
    return Skip(bnn, square(blindspot)) if skip else bnn


@register_model("ssid_lan", test_kwargs={"width": 16, "blocks": 2})
def ssid_lan(
    *,
    blindspot: int = 3,
    in_ch: int = 3,
    out_ch: int = 3,
    width: int = 64,
    blocks: int = 6,
    skip: bool = False,
) -> nn.Module:
    """SSID's stage-2 locally aware network (94,939 parameters at the defaults). ``skip``: plus its
    input (:class:`models.layers.skip.Skip`; the same parameters)."""
    lan = LAN(blindspot=blindspot, in_ch=in_ch, out_ch=out_ch, width=width, blocks=blocks)
    return Skip(lan, None) if skip else lan


@register_model("ssid_unet", test_kwargs={"dim": 8}, multiple=32)
def ssid_unet(*, in_ch: int = 3, out_ch: int = 3, dim: int = 48, skip: bool = False) -> nn.Module:
    """SSID's stage-3 denoiser (1,083,747 parameters at the defaults). ``skip``: plus its input
    (:class:`models.layers.skip.Skip`; the same parameters)."""
    unet = UNet(in_ch=in_ch, out_ch=out_ch, dim=dim)
    return Skip(unet, None) if skip else unet
