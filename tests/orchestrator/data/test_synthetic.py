"""The synthetic camera pipeline: determinism, layout, and noise that behaves like real sRGB noise."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from orchestrator.correlation.stats import noise_of, radial_profile, rgb_pearson_sums
from orchestrator.data import camera, synthetic
from orchestrator.data.sidd import index_sidd, load_pair, load_validation


def _scene(h: int = 128, w: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth, mid-grey-ish clean scene in [0, 1] with a horizontal brightness ramp."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0.08, 0.9, w)[None, :, None]
    tint = rng.uniform(0.85, 1.0, size=3)
    return np.broadcast_to(ramp * tint, (h, w, 3)).copy()


def _shoot(profile: camera.CameraProfile, scene: np.ndarray, iso: int, seed: int = 0):
    return camera.capture(
        scene, profile, iso=iso, illuminant=4400, exposure=0.75, rng=np.random.default_rng(seed)
    )


def test_pipeline_without_noise_round_trips() -> None:
    """unprocess then render returns the scene (up to 8-bit rounding) for in-gamut colours."""
    scene = synthetic._tame(_scene())
    for prof in camera.PROFILES.values():
        raw = camera.unprocess(scene, prof, 4400, 0.75)
        out = camera.render(raw, prof, 4400, 0.75).astype(float)
        # Demosaicking a smooth ramp is near exact; allow 8-bit rounding and edge effects.
        assert np.abs(out[4:-4, 4:-4] - scene[4:-4, 4:-4] * 255).max() <= 2.0, prof.code


def test_deterministic_from_seed(tmp_path: Path) -> None:
    spec = synthetic.SyntheticSpec(
        seed=3,
        scenes=2,
        size=(32, 48),
        val_images=1,
        val_blocks=2,
        block_size=16,
        bench_images=1,
        bench_blocks=1,
    )
    a = index_sidd(synthetic.generate(tmp_path / "a", spec))
    b = index_sidd(synthetic.generate(tmp_path / "b", spec))
    c = index_sidd(synthetic.generate(tmp_path / "c", replace(spec, seed=4)))
    assert [p.key for p in a.pairs] == [p.key for p in b.pairs]
    for pa, pb in zip(a.pairs, b.pairs, strict=True):
        for xa, xb in zip(load_pair(pa), load_pair(pb), strict=True):
            np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(load_validation(a)[0], load_validation(b)[0])
    assert not np.array_equal(load_pair(a.pairs[0])[0], load_pair(c.pairs[0])[0])


def test_layout_and_metadata(synthetic_tree: Path) -> None:
    index = index_sidd(synthetic_tree)
    assert {p.info.camera for p in index.pairs} == set(camera.PROFILES)  # cameras in turn
    assert {p.frame for p in index.pairs} == {"010", "011"}
    for p in index.pairs:
        assert p.info.iso in camera.PROFILES[p.info.camera].isos
        assert p.info.illuminant in camera.ILLUMINANTS
    # Two frames of one scene: same clean content, independent noise.
    f10, f11 = (p for p in index.pairs if p.scene_name == index.pairs[0].scene_name)
    (n10, c10), (n11, c11) = load_pair(f10), load_pair(f11)
    np.testing.assert_array_equal(c10, c11)
    assert not np.array_equal(n10, n11)


def test_noise_is_signal_dependent() -> None:
    """Noise variance grows with the clean intensity (shot noise), not a constant as in AWGN."""
    prof = replace(camera.PROFILES["GP"], chroma_scale=0.0)
    scene = _scene(256, 256)
    noisy, clean = _shoot(prof, scene, iso=1600)
    x = noise_of(noisy, clean).astype(float)
    # Raw noise variance is K*signal + read^2; compare dark and bright columns of the ramp
    # in linear light, where the transfer curve does not compress the bright end.
    lin_noisy = camera.srgb_to_linear(noisy / 255.0)
    lin_clean = camera.srgb_to_linear(clean / 255.0)
    d = lin_noisy - lin_clean
    dark, bright = d[:, 20:60].var(), d[:, -60:-20].var()
    assert bright > 3 * dark
    assert np.abs(x.mean()) < 2.0  # and it is (nearly) zero-mean in sRGB


def test_noise_is_spatially_correlated() -> None:
    """Demosaicking and chroma smoothing correlate neighbours: offset 1 far above offset 10."""
    noisy, clean = _shoot(camera.PROFILES["IP"], _scene(192, 192), iso=800)
    prof = radial_profile(rgb_pearson_sums(noise_of(noisy, clean), 10).map())
    assert prof[1] > 0.3
    assert abs(prof[10]) < 0.05
    assert prof[1] > prof[2] > prof[3]


def test_profiles_differ() -> None:
    """Same scene, same ISO and seed: different cameras give different noise."""
    scene = _scene(160, 160)
    stats = {}
    for code, prof in camera.PROFILES.items():
        noisy, clean = _shoot(prof, scene, iso=800, seed=1)
        x = noise_of(noisy, clean).astype(float)
        corr = radial_profile(rgb_pearson_sums(x, 4).map(), (1, 2, 3))
        stats[code] = (tuple(np.round(x.std(axis=(0, 1)), 2)), round(corr[1], 3), round(corr[3], 3))
    assert len(set(stats.values())) == len(stats), stats
    stds = np.array([s[0] for s in stats.values()])
    assert np.ptp(stds.mean(axis=1)) > 0.5  # noise levels differ by more than rounding


def test_malvar_and_bilinear_demosaic_disagree_on_edges_but_agree_on_flat() -> None:
    flat = np.full((16, 16), 0.3)
    for cfa in camera.CFA_PATTERNS:
        for method in camera.DEMOSAIC_METHODS:
            np.testing.assert_allclose(camera.demosaic(flat, cfa, method), 0.3, atol=1e-12)
    edge = np.zeros((16, 16, 3))
    edge[:, 8:] = 0.8
    raw = camera.mosaic(edge, "RGGB")
    assert not np.allclose(camera.demosaic(raw, "RGGB", "bilinear"), camera.demosaic(raw, "RGGB", "malvar"))


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="unknown camera code"):
        synthetic.SyntheticSpec(cameras=("XX",))
    with pytest.raises(ValueError, match="too small"):
        synthetic.SyntheticSpec(size=(8, 8))
    with pytest.raises(ValueError, match="cfa"):
        replace(camera.PROFILES["GP"], cfa="RGBG")


def test_noise_gain_and_zoom(tmp_path: Path) -> None:
    """noise_gain scales the noise (folder names keep the recorded ISO); zoom smooths the content."""
    spec = synthetic.SyntheticSpec(
        seed=3, scenes=2, size=(64, 96), val_images=1, val_blocks=2, block_size=32, bench_images=0
    )
    stats = {}
    for name, s in {
        "base": spec,
        "gain": replace(spec, noise_gain=4.0),
        "zoom": replace(spec, zoom=4.0),
    }.items():
        index = index_sidd(synthetic.generate(tmp_path / name, s))
        noisy, clean = load_pair(index.pairs[0])
        grad = np.abs(np.diff(clean.astype(float), axis=1)).mean()
        stats[name] = ((noisy.astype(float) - clean).std(), grad, [p.info.iso for p in index.pairs])
    assert stats["gain"][0] > 1.5 * stats["base"][0]
    assert stats["gain"][2][0] == stats["base"][2][0]  # the first scene: same draw, same recorded ISO
    assert stats["zoom"][1] < 0.6 * stats["base"][1]
    with pytest.raises(ValueError, match="noise_gain"):
        replace(spec, noise_gain=0.0)
    with pytest.raises(ValueError, match="zoom"):
        replace(spec, zoom=0.5)


@pytest.mark.slow
def test_pooled_map_of_the_default_mix_is_sidds_diamond(tmp_path: Path) -> None:
    """The 40-pair tree of ``jobs/correlation.py --set data.synthetic.scenes=20`` pools to a map
    whose region above 0.02 is LG-BPN's radius-4 diamond, as the real SIDD Medium map's is, with
    the correlation reaching further along the axes than along the diagonals."""
    from models.masks import diamond, from_correlation
    from orchestrator.correlation.report import load_reference

    root = synthetic.generate(tmp_path / "sidd", synthetic.SyntheticSpec(scenes=20))
    pooled = None
    for pair in index_sidd(root).pairs:
        sums = rgb_pearson_sums(noise_of(*load_pair(pair)), 10)
        pooled = sums if pooled is None else pooled + sums
    corr = pooled.map()
    np.testing.assert_array_equal(from_correlation(corr), diamond(4, size=21))
    c = 10
    assert corr[c, c + 4] > 1.5 * corr[c + 2, c + 3]  # (0, 4) against (2, 3): 0.026 / 0.014
    reference = load_reference("sidd", 10)  # the authors' map over real SIDD Medium
    for d in range(1, 6):  # the axis profile within 0.05 of SIDD's
        assert abs(radial_profile(corr)[d] - radial_profile(reference)[d]) < 0.05, d


def test_the_configs_camera_codes_are_the_profiles():
    from orchestrator.data.camera import PROFILES
    from orchestrator.schema import CAMERA_CODES

    assert tuple(PROFILES) == CAMERA_CODES
