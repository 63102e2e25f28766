"""Readers for the SIDD sRGB data: SIDD Medium pairs, validation and benchmark ``.mat`` blocks.

Layout (as distributed, and as :mod:`orchestrator.data.synthetic` writes it)::

    ROOT/SIDD_Medium_Srgb/Data/<scene>/<id>_GT_SRGB_<frame>.PNG
    ROOT/SIDD_Medium_Srgb/Data/<scene>/<id>_NOISY_SRGB_<frame>.PNG
    ROOT/SIDD_Validation/ValidationNoisyBlocksSrgb.mat   variable ValidationNoisyBlocksSrgb
    ROOT/SIDD_Validation/ValidationGtBlocksSrgb.mat      variable ValidationGtBlocksSrgb
    ROOT/SIDD_Benchmark/BenchmarkNoisyBlocksSrgb.mat     variable BenchmarkNoisyBlocksSrgb

Scene folders are named ``<instance>_<scene>_<camera>_<iso>_<shutter>_<illuminant>_<brightness>``,
e.g. ``0001_001_S6_00100_00060_3200_L``. Block arrays are uint8 (images, blocks, H, W, 3): the real
files hold 40 x 32 x 256 x 256 x 3. ``.mat`` files may be MATLAB v5-v7 (read by
:mod:`orchestrator.data.matfile`) or v7.3 (HDF5, read by h5py).

Every problem found while indexing is collected and raised together as one :class:`DatasetError`,
one line per file naming the file and what is wrong, before anything is trained.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from orchestrator.data.files import DatasetError, check_blocks_file, load_blocks, png_size, read_pair

MEDIUM_DIR = Path("SIDD_Medium_Srgb") / "Data"
VALIDATION_NOISY = Path("SIDD_Validation") / "ValidationNoisyBlocksSrgb.mat"
VALIDATION_GT = Path("SIDD_Validation") / "ValidationGtBlocksSrgb.mat"
BENCHMARK_NOISY = Path("SIDD_Benchmark") / "BenchmarkNoisyBlocksSrgb.mat"

CAMERAS = {
    "GP": "Google Pixel",
    "IP": "iPhone 7",
    "S6": "Samsung Galaxy S6 Edge",
    "N6": "Motorola Nexus 6",
    "G4": "LG G4",
}
BRIGHTNESS = {"L": "low", "N": "normal", "H": "high"}

_SCENE_RE = re.compile(
    r"^(?P<instance>\d{4})_(?P<scene>\d{3})_(?P<camera>[A-Z0-9]{2})_(?P<iso>\d{5})"
    r"_(?P<shutter>\d{5})_(?P<illuminant>\d{4})_(?P<brightness>[LNH])$"
)
_FILE_RE = re.compile(r"^(?P<id>\d{4})_(?P<kind>GT|NOISY)_SRGB_(?P<frame>\d{3})\.PNG$", re.IGNORECASE)


@dataclass(frozen=True)
class SceneInfo:
    """Fields of a SIDD scene folder name."""

    instance: int
    scene: int
    camera: str
    iso: int
    shutter: int
    illuminant: int
    brightness: str

    @property
    def camera_name(self) -> str:
        return CAMERAS.get(self.camera, self.camera)


def parse_scene_name(name: str) -> SceneInfo:
    """Parse ``0001_001_S6_00100_00060_3200_L`` into its fields; raise ValueError if malformed."""
    m = _SCENE_RE.match(name)
    if not m:
        raise ValueError(
            f"scene folder name {name!r} does not match "
            "<instance:4>_<scene:3>_<camera:2>_<iso:5>_<shutter:5>_<illuminant:4>_<L|N|H>"
        )
    g = m.groupdict()
    return SceneInfo(
        instance=int(g["instance"]),
        scene=int(g["scene"]),
        camera=g["camera"],
        iso=int(g["iso"]),
        shutter=int(g["shutter"]),
        illuminant=int(g["illuminant"]),
        brightness=g["brightness"],
    )


def format_scene_name(info: SceneInfo) -> str:
    return (
        f"{info.instance:04d}_{info.scene:03d}_{info.camera}_{info.iso:05d}_{info.shutter:05d}"
        f"_{info.illuminant:04d}_{info.brightness}"
    )


@dataclass(frozen=True)
class PairRecord:
    """One noisy/clean pair of SIDD Medium with its scene metadata."""

    key: str  # "<scene>/<id>_<frame>", unique in a dataset
    scene_name: str
    frame: str
    noisy_path: str
    clean_path: str
    height: int
    width: int
    info: SceneInfo

    def as_row(self) -> dict:
        """Flat dict (for Parquet / Ray Data rows / MLflow)."""
        row = {k: v for k, v in asdict(self).items() if k != "info"}
        row.update(asdict(self.info))
        return row


# --------------------------------------------------------------------------------------- index


@dataclass(frozen=True)
class BlocksInfo:
    noisy_path: str
    gt_path: str | None
    shape: tuple[int, ...]  # (images, blocks, H, W, 3)

    @property
    def n_blocks(self) -> int:
        return int(self.shape[0] * self.shape[1])


@dataclass(frozen=True)
class SiddIndex:
    """What a SIDD root holds, validated. Paths are absolute strings."""

    root: str
    pairs: tuple[PairRecord, ...]
    validation: BlocksInfo | None
    benchmark: BlocksInfo | None
    problems: tuple[tuple[str, str], ...] = ()  # (path, message) left out; only with strict=False

    def summary(self) -> str:
        cams: dict[str, int] = {}
        for p in self.pairs:
            cams[p.info.camera] = cams.get(p.info.camera, 0) + 1
        scenes = len({p.scene_name for p in self.pairs})
        lines = [
            f"SIDD root {self.root}",
            f"  medium pairs: {len(self.pairs)} in {scenes} scene folders; cameras "
            + ", ".join(f"{k}={v}" for k, v in sorted(cams.items())),
        ]
        if self.pairs:
            sizes = sorted({(p.height, p.width) for p in self.pairs})
            lines.append("  sizes (HxW): " + ", ".join(f"{h}x{w}" for h, w in sizes[:4]))
        for name, b in (("validation", self.validation), ("benchmark", self.benchmark)):
            lines.append(f"  {name}: " + (f"{b.n_blocks} blocks, shape {b.shape}" if b else "not present"))
        if self.problems:
            lines.append(f"  left out: {len(self.problems)} bad file(s)")
            lines.extend(f"    {path}: {msg}" for path, msg in self.problems)
        return "\n".join(lines)


def _index_scene(scene_dir: Path, check_images: bool) -> tuple[list[PairRecord], list[tuple[Path, str]]]:
    problems: list[tuple[Path, str]] = []
    try:
        info = parse_scene_name(scene_dir.name)
    except ValueError as exc:
        return [], [(scene_dir, str(exc))]
    files: dict[tuple[str, str], dict[str, Path]] = {}
    for f in sorted(scene_dir.iterdir()):
        m = _FILE_RE.match(f.name)
        if not m:
            continue
        files.setdefault((m["id"], m["frame"]), {})[m["kind"].upper()] = f
    if not files:
        problems.append((scene_dir, "no <id>_GT_SRGB_<frame>.PNG / <id>_NOISY_SRGB_<frame>.PNG files"))
    pairs = []
    for (pid, frame), kinds in sorted(files.items()):
        for kind, other in (("GT", "NOISY"), ("NOISY", "GT")):
            if kind in kinds and other not in kinds:
                missing = scene_dir / kinds[kind].name.replace(f"_{kind}_", f"_{other}_")
                problems.append((missing, f"missing: {kinds[kind].name} has no {other} partner"))
        if len(kinds) != 2:
            continue
        noisy, clean = kinds["NOISY"], kinds["GT"]
        try:
            nh, nw, nmode = png_size(noisy) if check_images else (0, 0, "RGB")
            ch, cw, cmode = png_size(clean) if check_images else (0, 0, "RGB")
        except DatasetError as exc:
            problems.extend(exc.problems)
            continue
        bad_mode = [(p, m) for p, m in ((noisy, nmode), (clean, cmode)) if m != "RGB"]
        for p, m in bad_mode:
            problems.append((p, f"expected an 8-bit RGB PNG, found mode {m}"))
        if (nh, nw) != (ch, cw):
            problems.append(
                (noisy, f"shape mismatch: noisy is {nh}x{nw} but clean {clean.name} is {ch}x{cw}")
            )
            continue
        if bad_mode:
            continue
        pairs.append(
            PairRecord(
                key=f"{scene_dir.name}/{pid}_{frame}",
                scene_name=scene_dir.name,
                frame=frame,
                noisy_path=str(noisy.resolve()),
                clean_path=str(clean.resolve()),
                height=nh,
                width=nw,
                info=info,
            )
        )
    return pairs, problems


def _index_blocks(root: Path, noisy_rel: Path, gt_rel: Path | None) -> tuple[BlocksInfo | None, list]:
    noisy = root / noisy_rel
    gt = root / gt_rel if gt_rel is not None else None
    if not noisy.exists() and (gt is None or not gt.exists()):
        return None, []
    problems: list[tuple[Path, str]] = []
    shapes = {}
    for path in (noisy, gt):
        if path is None:
            continue
        if not path.exists():
            problems.append((path, "file not found (the noisy/ground-truth pair is incomplete)"))
            continue
        try:
            shapes[path] = check_blocks_file(path, path.stem)
        except DatasetError as exc:
            problems.extend(exc.problems)
    if gt is not None and len(shapes) == 2 and shapes[noisy] != shapes[gt]:
        problems.append((gt, f"shape {shapes[gt]} differs from {noisy.name}'s {shapes[noisy]}"))
    if problems:
        return None, problems
    return BlocksInfo(str(noisy.resolve()), str(gt.resolve()) if gt else None, shapes[noisy]), []


def index_sidd(
    root: str | Path, *, require_medium: bool = True, check_images: bool = True, strict: bool = True
) -> SiddIndex:
    """Index and validate a SIDD root.

    Args:
        root: folder holding ``SIDD_Medium_Srgb/`` and optionally ``SIDD_Validation/`` and
            ``SIDD_Benchmark/``.
        require_medium: fail when no training pairs are found.
        check_images: verify every PNG (header, CRCs, size, mode) without decoding pixels.
        strict: raise on any bad file. With False, the bad files are left out and listed in
            ``SiddIndex.problems``; the index still raises when nothing usable is left.

    Raises:
        DatasetError: listing every bad file found (missing partner, corrupt or truncated PNG,
            noisy/clean shape mismatch, bad scene-folder name, bad ``.mat`` variable/shape/dtype).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError([(root, "dataset root is not a directory")])
    problems: list[tuple[Path, str]] = []
    pairs: list[PairRecord] = []
    data_dir = root / MEDIUM_DIR
    if data_dir.is_dir():
        for scene_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
            found, bad = _index_scene(scene_dir, check_images)
            pairs.extend(found)
            problems.extend(bad)
    if require_medium and not pairs and not problems:
        problems.append(
            (data_dir, "no SIDD Medium sRGB pairs found (expected <scene>/<id>_GT_SRGB_010.PNG ...)")
        )
    validation, bad = _index_blocks(root, VALIDATION_NOISY, VALIDATION_GT)
    problems.extend(bad)
    benchmark, bad = _index_blocks(root, BENCHMARK_NOISY, None)
    problems.extend(bad)
    if problems and (strict or (require_medium and not pairs)):
        raise DatasetError(problems)
    kept = tuple((str(path), msg) for path, msg in problems)
    return SiddIndex(str(root.resolve()), tuple(pairs), validation, benchmark, kept)


def load_pair(record: PairRecord) -> tuple[np.ndarray, np.ndarray]:
    """Decode a pair to uint8 (H, W, 3) arrays (noisy, clean), checking their shapes agree."""
    return read_pair(record.noisy_path, record.clean_path)


def load_validation(index: SiddIndex) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, gt) validation blocks flattened to (N, H, W, 3) uint8."""
    if index.validation is None or index.validation.gt_path is None:
        raise DatasetError([(Path(index.root) / VALIDATION_NOISY, "validation blocks not present")])
    noisy = load_blocks(index.validation.noisy_path, VALIDATION_NOISY.stem)
    gt = load_blocks(index.validation.gt_path, VALIDATION_GT.stem)
    return noisy.reshape(-1, *noisy.shape[2:]), gt.reshape(-1, *gt.shape[2:])
