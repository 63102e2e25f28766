"""LG-BPN computes exactly what the original does (train, kernel-shifted eval, R3) and is blind
where its configured mask says."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import create_model, masks
from models.layers.dtb import DilatedTransformerBlock
from models.layers.kernel_shift import shrink_kernel
from models.registry import blind_region

from .same import assert_blind, assert_same_function


@pytest.mark.parametrize(("width", "params"), [(128, 4_558_879), (32, 597_403)])
def test_parameter_counts_equal_the_original(width: int, params: int) -> None:
    assert sum(p.numel() for p in create_model("lgbpn", width=width).parameters()) == params


def test_kernel_shift_is_bilinear_resampling() -> None:
    w = torch.zeros(1, 1, 9, 9)
    w[0, 0, 4, 8] = 1.0  # the tap at offset (0, +4) moves to 0.72 * 4 = 2.88
    dense = shrink_kernel(w, 0.72)
    assert dense.shape[-1] == 7
    torch.testing.assert_close(dense[0, 0, 3, 5:7], torch.tensor([0.12, 0.88]))
    assert dense.sum() == pytest.approx(1.0)
    assert shrink_kernel(torch.ones(2, 3, 21, 21), 0.8).shape[-1] == 17


def _train_gradient(blind: np.ndarray, *, blocks: int = 0, y: int = 40, x: int = 40) -> torch.Tensor:
    torch.manual_seed(0)
    model = create_model("lgbpn", width=8, head_ch=4, modules=1, blocks=blocks, blind=blind).train()
    inp = torch.rand(1, 3, 80, 80, requires_grad=True)
    model(inp)[0, :, y, x].sum().backward()
    return inp.grad[0].abs().sum(0)


def test_transformer_blocks_add_only_image_wide_statistics() -> None:
    # The DTB's channel attention normalises q and k over the whole (sub-)image, so every pixel
    # reaches the output through a C x C attention map: a tiny, image-wide dependence, not a view
    # of the blind region. Its size relative to the visible taps is bounded here.
    blind = masks.diamond(4)
    grad = _train_gradient(blind, blocks=1)
    inside = grad[36:45, 36:45][torch.from_numpy(blind)]
    assert inside.max() < 1e-2 * grad.max()


def test_branches_and_fusion_are_swappable() -> None:
    x = torch.rand(1, 3, 40, 40) * 255
    for kw in ({"fusion": "average"}, {"local": None}, {"global_": None}):
        model = create_model("lgbpn", width=8, head_ch=4, modules=1, blocks=1, **kw).eval()
        with torch.no_grad():
            assert model.denoise(x).shape == x.shape
    with pytest.raises(ValueError, match="fusion"):
        create_model("lgbpn", fusion="max")


def test_l1_and_s1_swaps() -> None:
    # L-1: SSID's BNN in LG-BPN's local slot; the registry derives the model's blind region from
    # its branches (the BNN's 9x9 square here), and the model keeps it.
    l1 = {"local": "ssid_bnn_branch", "global_": None, "width": 8, "head_ch": 4}
    assert np.array_equal(blind_region("lgbpn", l1), np.ones((9, 9), bool))
    assert_blind("lgbpn", l1)
    # With both branches, what neither sees: the global branch's diamond inside the BNN's square.
    both = {**l1, "global_": "lgbpn_global", "blocks": 0}
    assert np.array_equal(blind_region("lgbpn", both), masks.diamond(4))
    # S-1: LG-BPN's local branch alone as SSID's stage 1: an image-to-image blind network.
    s1 = create_model("lgbpn", global_=None, width=8, head_ch=4, modules=1).train()
    assert s1(torch.rand(2, 3, 64, 64)).shape == (2, 3, 64, 64)


@pytest.mark.parametrize("local", ["lgbpn_local", "lgbpn_local_dtb"])
def test_activation_checkpointing_changes_neither_outputs_nor_gradients(local: str, monkeypatch) -> None:
    kwargs = {"local": local, "width": 16, "head_ch": 8, "modules": 2, "blocks": 1, "r3": False}
    torch.manual_seed(0)
    plain = create_model("lgbpn", **kwargs)
    checkpointed = create_model("lgbpn", checkpoint=True, **kwargs)
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 40, 40) * 255
    block_forward = DilatedTransformerBlock.forward
    count = [0]

    def counted(self, h):
        count[0] += 1
        return block_forward(self, h)

    monkeypatch.setattr(DilatedTransformerBlock, "forward", counted)
    results, calls = [], []
    for model in (plain, checkpointed):
        model.train()
        count[0] = 0
        out = model(x)
        out.abs().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
        calls.append(count[0])
    dtbs = 1 + (local == "lgbpn_local_dtb") * 2  # the global branch's block, L-3's local ones
    assert calls == [dtbs, 2 * dtbs]  # checkpointed: each block ran again in the backward pass
    torch.testing.assert_close(results[0][0], results[1][0], rtol=0, atol=0)
    for g_plain, g_ckpt in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(g_plain, g_ckpt, rtol=1e-6, atol=1e-6)
    assert checkpointed.bsn.local.checkpoint and checkpointed.bsn.global_.checkpoint


@pytest.mark.parametrize(("size", "d", "groups"), [((2, 12, 9), 3, 6), ((1, 7, 10), 2, 1), ((1, 5, 5), 3, 3)])
def test_dilated_convolution_as_subimages_is_the_dilated_convolution(size, d, groups) -> None:
    """The training path of the DTB's dilated depthwise convolutions: same values and gradients,
    including sizes that are not multiples of the dilation."""
    from models.layers.dtb import dilated_as_subimages

    torch.manual_seed(d)
    b, h, w = size
    conv = torch.nn.Conv2d(6, 6, 3, padding=d, dilation=d, groups=groups).double()
    x = torch.randn(b, h, w, 6, dtype=torch.float64, requires_grad=True)
    want = conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    got = dilated_as_subimages(x, conv)
    assert_same_function(got, want, (x, conv.weight, conv.bias))
    with pytest.raises(ValueError, match="same-size dilated convolution"):
        dilated_as_subimages(x, torch.nn.Conv2d(6, 6, 3, padding=1, dilation=d).double())


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_lattice_kernels_run_as_dilated_smaller_ones(padding_mode) -> None:
    """LG-BPN's global 21x21 kernel has taps on a step-2 lattice only: it runs as an 11x11 kernel
    dilated by 2, with the dense masked convolution's values and gradients."""
    import torch.nn.functional as F

    from models.layers.masked_conv import MaskedConv2d, lattice_step
    from models.lgbpn import global_taps, local_taps

    taps = global_taps(masks.diamond(4))
    assert lattice_step(taps) == 2 and lattice_step(local_taps(masks.diamond(4))) == 1
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 4, taps, padding_mode=padding_mode).double()
    x = torch.randn(2, 3, 25, 23, dtype=torch.float64, requires_grad=True)
    got = conv(x)
    padded = F.pad(x, (10, 10, 10, 10), mode="constant" if padding_mode == "zeros" else padding_mode)
    want = F.conv2d(padded, conv.weight * conv.mask, conv.bias)
    assert_same_function(got, want, (x, conv.weight, conv.bias))
    dense = MaskedConv2d(3, 4, torch.ones(21, 21), padding_mode=padding_mode).double()  # no lattice yet
    assert dense.lattice == 1
    dense.load_state_dict(conv.state_dict())
    assert dense.lattice == 2
    torch.testing.assert_close(dense(x), want)


def test_channel_attention_and_layer_norm_equal_their_direct_forms() -> None:
    """The DTB's attention (one C x C product, block-diagonal mixing) is Restormer's per-head
    softmax(normalize(q) normalize(k)^T * t) v, values and gradients; its layer norm's inference
    path equals the training one."""
    import torch.nn.functional as F

    from models.layers.dtb import BiasFreeLayerNorm, ChannelAttention, _depthwise, _linear

    torch.manual_seed(3)
    att = ChannelAttention(12, 3, 2).double()
    with torch.no_grad():
        att.temperature.uniform_(0.5, 2.0)
    x = torch.randn(2, 7, 9, 12, dtype=torch.float64, requires_grad=True)

    def direct(x):
        b, h, w, c = x.shape
        qkv = _depthwise(_linear(x, att.qkv), att.qkv_dw).reshape(b, h * w, 3, 3, c // 3)
        q, k, v = qkv.permute(2, 0, 3, 4, 1).unbind(0)  # (B, heads, c/heads, HW)
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1) * att.temperature).softmax(-1)
        return _linear((attn @ v).permute(0, 3, 1, 2).reshape(b, h, w, c), att.project)

    assert_same_function(att(x), direct(x), (x, *att.parameters()))
    norm = BiasFreeLayerNorm(12).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        fast = norm(x + 3.0)
    torch.testing.assert_close(fast, norm(x + 3.0))


def test_kernel_shift_scales_every_test_time_ratio() -> None:
    import pytest

    from models import create_model
    from models.lgbpn import GLOBAL_PD, LOCAL_PD

    m = create_model("lgbpn", width=8, head_ch=4, modules=1, blocks=1, kernel_shift=0.5, skip=True)
    local, glob = m.bsn.net.local.pd, m.bsn.net.global_.pd
    assert (local.test_ratio, local.refine_ratio) == (LOCAL_PD.test_ratio / 2, LOCAL_PD.refine_ratio / 2)
    assert (glob.test_ratio, glob.refine_ratio) == (GLOBAL_PD.test_ratio / 2, GLOBAL_PD.refine_ratio / 2)
    assert local.train == LOCAL_PD.train and m.bsn.ratios == (local.test_ratio, local.refine_ratio)
    with pytest.raises(ValueError, match="kernel_shift"):
        create_model("lgbpn", width=8, head_ch=4, modules=1, blocks=1, kernel_shift=0.0)
