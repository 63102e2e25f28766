"""Bad input at every entry point, run through the jobs' own ``main`` as a user's command line
runs it, and what the user sees: the exit status and what is printed on stderr.

``docs/BAD_INPUTS.md`` is this table; ``tests/reliability/test_bad_inputs.py`` runs every case
and fails when the table and the jobs disagree. After changing a message, write it again with
``python -m tests.reliability.bad_inputs --write``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.files import CodePayload, stage_model_file, with_ihdr

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "BAD_INPUTS.md"
SCENE_GLOB = "SIDD_Medium_Srgb/Data/*"


@dataclass(frozen=True)
class Case:
    entry: str  # the job: ablations, correlation, denoise, evaluate, sweep
    group: str  # datasets, configs, checkpoints, images, CLI arguments, outputs
    what: str  # the case, in words
    argv: Callable[[Path], list[str]]  # the command line, given a folder the case may fill


# ------------------------------------------------------------------------------ fixtures


def make_tree(root: Path) -> Path:
    """A small valid SIDD tree (two scenes), made by the project's generator."""
    from orchestrator.data.synthetic import generate
    from orchestrator.schema import SyntheticSpec

    spec = SyntheticSpec(seed=3, scenes=2, size=(64, 96), val_images=1, val_blocks=2, block_size=32)
    return generate(root, spec)


_TREE: Path | None = None


def _tree(tmp: Path) -> Path:
    """A fresh copy of the valid tree in ``tmp``."""
    assert _TREE is not None, "call prepare() first"
    return Path(shutil.copytree(_TREE, tmp / "sidd"))


def _first(tree: Path, pattern: str) -> Path:
    return sorted(tree.glob(f"{SCENE_GLOB}/{pattern}"))[0]


def _image(tmp: Path, name: str, pixels: np.ndarray) -> Path:
    from PIL import Image

    tmp.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(tmp / name)
    return tmp / name


# -------------------------------------------------------------------------------- cases


def _data(tree_fn: Callable[[Path], Path], job: str = "ablations") -> Callable[[Path], list[str]]:
    """The command line of ``job`` on the tree ``tree_fn`` damages."""

    def argv(tmp: Path) -> list[str]:
        tree = tree_fn(tmp)
        if job == "correlation":  # it leaves bad pairs out unless told to be strict
            return ["--data", str(tree), "--out", str(tmp / "out"), "--no-tracking", "--strict"]
        return ["--data", str(tree), "--out", str(tmp / "out"), "--tracking-uri", f"sqlite:///{tmp}/m.db"]

    return argv


def _missing_partner(tmp: Path) -> Path:
    tree = _tree(tmp)
    _first(tree, "*_GT_SRGB_010.PNG").unlink()
    return tree


def _truncated_png(tmp: Path) -> Path:
    tree = _tree(tmp)
    png = _first(tree, "*_NOISY_SRGB_011.PNG")
    png.write_bytes(png.read_bytes()[:200])
    return tree


def _bit_flip(tmp: Path) -> Path:
    tree = _tree(tmp)
    png = _first(tree, "*_GT_SRGB_011.PNG")
    data = bytearray(png.read_bytes())
    data[data.index(b"IDAT") + 40] ^= 0x10
    png.write_bytes(bytes(data))
    return tree


def _huge_header(tmp: Path) -> Path:
    tree = _tree(tmp)
    png = _first(tree, "*_NOISY_SRGB_010.PNG")
    png.write_bytes(with_ihdr(png.read_bytes(), 2**31 - 1, 1, 8, 2, 0, 0, 0))
    return tree


def _bad_scene_name(tmp: Path) -> Path:
    tree = _tree(tmp)
    scene = sorted(tree.glob(SCENE_GLOB))[0]
    scene.rename(scene.with_name("scene-one"))
    return tree


def _shape_mismatch(tmp: Path) -> Path:
    tree = _tree(tmp)
    png = _first(tree, "*_GT_SRGB_010.PNG")
    _image(png.parent, png.name, np.zeros((32, 96, 3), np.uint8))
    return tree


def _mat_wrong_variable(tmp: Path) -> Path:
    from scipy.io import savemat

    tree = _tree(tmp)
    savemat(
        tree / "SIDD_Validation" / "ValidationGtBlocksSrgb.mat", {"gt": np.zeros((1, 2, 32, 32, 3), np.uint8)}
    )
    return tree


def _mat_damaged(tmp: Path) -> Path:
    tree = _tree(tmp)
    mat = tree / "SIDD_Validation" / "ValidationNoisyBlocksSrgb.mat"
    data = bytearray(mat.read_bytes())
    data[-200:] = b""  # cut short
    mat.write_bytes(bytes(data))
    return tree


def _mat_float(tmp: Path) -> Path:
    from scipy.io import savemat

    tree = _tree(tmp)
    blocks = np.zeros((1, 2, 32, 32, 3), np.float32)
    savemat(tree / "SIDD_Validation" / "ValidationNoisyBlocksSrgb.mat", {"ValidationNoisyBlocksSrgb": blocks})
    return tree


def _not_sidd(tmp: Path) -> Path:
    (tmp / "photos").mkdir()
    _image(tmp / "photos", "a.png", np.zeros((8, 8, 3), np.uint8))
    return tmp / "photos"


def _write(tmp: Path, name: str, text: str | bytes) -> Path:
    path = tmp / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def _study(*args: str) -> Callable[[Path], list[str]]:
    """A study job's command line on a valid tree, with ``args``."""

    def argv(tmp: Path) -> list[str]:
        base = [
            "--data",
            str(_tree(tmp)),
            "--out",
            str(tmp / "runs"),
            "--tracking-uri",
            f"sqlite:///{tmp}/m.db",
        ]
        return [*base, *args]

    return argv


def _denoise(checkpoint: Callable[[Path], str], image: Callable[[Path], Path] | None = None, *extra: str):
    def argv(tmp: Path) -> list[str]:
        src = image(tmp) if image else _image(tmp, "ok.png", np.full((40, 40, 3), 128, np.uint8))
        return [str(src), "--checkpoint", checkpoint(tmp), "--out", str(tmp / "den"), *extra]

    return argv


def _ok_model(tmp: Path) -> str:
    return str(stage_model_file(tmp))


def _pickled_code(tmp: Path) -> str:
    import torch

    torch.save({"model": CodePayload()}, tmp / "evil.pt")
    return str(tmp / "evil.pt")


def _foreign_state(tmp: Path) -> str:
    import torch

    torch.save(
        {
            "meta": {"format": 1, "config": {"model": {"name": "ssid_unet", "kwargs": {"dim": 8}}}},
            "model": {"w": torch.zeros(1)},
        },
        tmp / "m.pt",
    )
    return str(tmp / "m.pt")


def _own(kind: str, build: Callable[[Path], Path], *extra: str, job: str = "ablations"):
    """A job's command line with ``--<kind>-data`` naming the source ``build`` writes."""

    def argv(tmp: Path) -> list[str]:
        flag = f"--{kind}-data"
        base = [flag, build(tmp), "--out", str(tmp / "out")]
        if kind == "eval":  # a good training folder beside it
            _image(tmp / "train", "good.png", np.full((40, 40, 3), 128, np.uint8))
            base += ["--train-data", f"folder:{tmp / 'train'}"]
        if job == "correlation":
            return [*base, "--no-tracking", *extra]
        return [*base, "--tracking-uri", f"sqlite:///{tmp}/m.db", *extra]

    return argv


def _empty_folder(tmp: Path) -> str:
    (tmp / "photos").mkdir()
    (tmp / "photos" / "notes.txt").write_text("no image here")
    return f"folder:{tmp / 'photos'}"


def _bad_photos(tmp: Path) -> str:
    """A truncated PNG, a JPEG cut short, a grayscale and an RGBA PNG, beside a good one."""
    d = tmp / "photos"
    d.mkdir()
    good = np.full((40, 40, 3), 128, np.uint8)
    _image(d, "good.png", good)
    _image(d, "cut.png", good)
    (d / "cut.png").write_bytes((d / "cut.png").read_bytes()[:60])
    _image(d, "short.jpg", good)
    (d / "short.jpg").write_bytes((d / "short.jpg").read_bytes()[:300])
    _image(d, "gray.png", np.full((40, 40), 128, np.uint8))
    _image(d, "alpha.png", np.full((40, 40, 4), 128, np.uint8))
    return f"folder:{d}"


def _pairs(tmp: Path, noisy_shape=(40, 40), names=("a.png",), clean_names=None) -> Path:
    for half, shape, files in (("noisy", noisy_shape, names), ("clean", (40, 40), clean_names or names)):
        (tmp / "pairs" / half).mkdir(parents=True, exist_ok=True)
        for n in files:
            _image(tmp / "pairs" / half, n, np.full((*shape, 3), 100, np.uint8))
    return tmp / "pairs"


def _pairs_sizes(tmp: Path) -> str:
    return f"pairs:{_pairs(tmp, noisy_shape=(40, 48))}"


def _pairs_unmatched(tmp: Path) -> str:
    return f"pairs:{_pairs(tmp, names=('a.png', 'b.png'), clean_names=('a.png', 'c.png'))}"


def _pairs_pattern(tmp: Path) -> str:
    return f"pairs:{_pairs(tmp)}"


def _same_names(tmp: Path) -> str:
    return f"x=pairs:{_pairs(tmp)}"


CASES: list[Case] = [
    # -- datasets
    Case("ablations", "datasets", "`--data` is not a SIDD tree", _data(_not_sidd)),
    Case("ablations", "datasets", "a noisy PNG without its GT partner", _data(_missing_partner)),
    Case("ablations", "datasets", "a truncated PNG", _data(_truncated_png)),
    Case("ablations", "datasets", "one flipped bit in a PNG's pixel data", _data(_bit_flip)),
    Case("ablations", "datasets", "a PNG header claiming 2^31-1 x 1 pixels", _data(_huge_header)),
    Case("ablations", "datasets", "a scene folder not named like SIDD's", _data(_bad_scene_name)),
    Case("ablations", "datasets", "noisy and GT of different sizes", _data(_shape_mismatch)),
    Case("ablations", "datasets", "a `.mat` file without the expected variable", _data(_mat_wrong_variable)),
    Case("ablations", "datasets", "a `.mat` file cut short", _data(_mat_damaged)),
    Case("ablations", "datasets", "validation blocks stored as float32", _data(_mat_float)),
    Case("correlation", "datasets", "a truncated PNG, with `--strict`", _data(_truncated_png, "correlation")),
    # -- your own data
    Case(
        "ablations",
        "your own data",
        "`--train-data` of an unknown source",
        _own("train", lambda t: f"photos:{t}"),
    ),
    Case("ablations", "your own data", "an empty folder", _own("train", _empty_folder)),
    Case(
        "ablations",
        "your own data",
        "a truncated PNG and JPEG, a grayscale and an RGBA image",
        _own("train", _bad_photos),
    ),
    Case("ablations", "your own data", "noisy and clean of different sizes", _own("eval", _pairs_sizes)),
    Case("ablations", "your own data", "pairs with a half missing", _own("eval", _pairs_unmatched)),
    Case(
        "ablations",
        "your own data",
        "name patterns that match nothing",
        _own(
            "eval",
            _pairs_pattern,
            "--set",
            "data.pairs.noisy_pattern=*_real.png",
            "--set",
            "data.pairs.clean_pattern=*_mean.png",
        ),
    ),
    Case(
        "ablations",
        "your own data",
        "two evaluation sources of the same name",
        _own("eval", _same_names, "--eval-data", "x=sidd:"),
    ),
    Case(
        "ablations", "your own data", "a folder (no clean image) to evaluate on", _own("eval", _empty_folder)
    ),
    Case(
        "correlation",
        "your own data",
        "a source without clean images",
        _own("train", _empty_folder, job="correlation"),
    ),
    Case(
        "correlation",
        "your own data",
        "`--statistic residual` on a folder without images",
        _own("train", _empty_folder, "--statistic", "residual", job="correlation"),
    ),
    # -- configs
    Case("ablations", "configs", "`--set` of an unknown key", _study("--set", "train.ssid.stesp=10")),
    Case(
        "ablations",
        "configs",
        "`--set` of a value of the wrong type",
        _study("--set", "train.ssid.steps=ten"),
    ),
    Case("ablations", "configs", "`--set` without `=`", _study("--set", "train.ssid.steps")),
    Case("ablations", "configs", "a prior's radius out of range", _study("--set", "prior.max_radius=0")),
    Case(
        "ablations",
        "configs",
        "a `trial.workers` that does not divide a stage's batch",
        _study("--ablations", "apbsn", "--set", "trial.workers=3"),
    ),
    Case(
        "ablations",
        "configs",
        "a prior's hidden offset that is not (dy, dx)",
        _study("--set", "prior.hidden=[[0, 1, 2]]"),
    ),
    Case(
        "ablations",
        "configs",
        "a reference's noise estimator stride of 0",
        _study("--set", "eval.classical.sigma_stride=0"),
    ),
    Case(
        "ablations",
        "configs",
        "`--set` below a value set before",
        _study("--set", "data=", "--set", "data.root=x"),
    ),
    Case("ablations", "configs", "an unknown profile", _study("--profile", "fast")),
    Case(
        "ablations",
        "configs",
        "`--config` YAML with a syntax error",
        lambda t: _study("--profile", str(_write(t, "s.yaml", "train: [1\n")))(t),
    ),
    Case(
        "ablations",
        "configs",
        "`--config` file that is not UTF-8",
        lambda t: _study("--profile", str(_write(t, "s.yaml", b"name: \xff\n")))(t),
    ),
    Case(
        "ablations",
        "configs",
        "an override for a stage the ablation lacks",
        _study("--ablations", "S-2", "--set", "overrides.S-2.lam.train.steps=3"),
    ),
    Case(
        "sweep",
        "configs",
        "a sweep distribution Tune does not have",
        lambda t: [
            "--space",
            str(_write(t, "s.yaml", "space:\n  train.lgbpn.optim.lr: {normal: [0, 1]}\n")),
            *_study()(t),
        ],
    ),
    Case(
        "sweep",
        "configs",
        "a sweep range with bounds of the wrong type",
        lambda t: [
            "--space",
            str(_write(t, "s.yaml", "space:\n  train.lgbpn.optim.lr: {loguniform: [a, b]}\n")),
            *_study()(t),
        ],
    ),
    Case(
        "correlation",
        "configs",
        "`--set` of an unknown statistic",
        lambda t: ["--set", "statistic=spearman", "--no-tracking"],
    ),
    # -- checkpoints
    Case(
        "ablations",
        "checkpoints",
        "a pretrained stage that does not exist",
        _study("--ablations", "ssid", "--set", "pretrained.ssid.bnn=nowhere/model.pt"),
    ),
    Case(
        "denoise",
        "checkpoints",
        "a checkpoint path that does not exist",
        _denoise(lambda t: str(t / "missing.pt")),
    ),
    Case(
        "denoise",
        "checkpoints",
        "a text file as checkpoint",
        _denoise(lambda t: str(_write(t, "notes.pt", "hello"))),
    ),
    Case("denoise", "checkpoints", "a pickle holding code", _denoise(_pickled_code)),
    Case("denoise", "checkpoints", "weights that do not fit the architecture", _denoise(_foreign_state)),
    Case(
        "denoise",
        "checkpoints",
        "an MLflow run that does not exist",
        lambda t: _denoise(
            lambda _: "runs:/" + "0123456789abcdef" * 2, None, "--tracking-uri", f"sqlite:///{t}/m.db"
        )(t),
    ),
    Case(
        "evaluate",
        "checkpoints",
        "an ablation with no finished run",
        lambda t: ["--ablation", "S-2", "--tracking-uri", f"sqlite:///{t}/m.db", "--out", str(t / "ev")],
    ),
    # -- images
    Case(
        "denoise",
        "images",
        "a grayscale PNG",
        _denoise(_ok_model, lambda t: _image(t, "gray.png", np.zeros((40, 40), np.uint8))),
    ),
    Case(
        "denoise",
        "images",
        "an RGBA PNG",
        _denoise(_ok_model, lambda t: _image(t, "rgba.png", np.zeros((40, 40, 4), np.uint8))),
    ),
    Case(
        "denoise",
        "images",
        "a truncated PNG",
        _denoise(
            _ok_model,
            lambda t: _write(
                t, "cut.png", _image(t, "x.png", np.zeros((40, 40, 3), np.uint8)).read_bytes()[:60]
            ),
        ),
    ),
    Case(
        "denoise",
        "images",
        "a file type it does not read",
        _denoise(_ok_model, lambda t: _write(t, "photo.gif", b"GIF89a")),
    ),
    Case(
        "denoise",
        "images",
        "an input path that does not exist",
        _denoise(_ok_model, lambda t: t / "nowhere.png"),
    ),
    # -- CLI arguments
    Case("ablations", "CLI arguments", "an unknown ablation name", _study("--ablations", "S-9")),
    Case("ablations", "CLI arguments", "an unknown option", _study("--epochs", "3")),
    Case("ablations", "CLI arguments", "`--resume` in a folder with no study", _study("--resume")),
    Case("correlation", "CLI arguments", "`--radius` not a number", lambda t: ["--radius", "ten"]),
    Case(
        "correlation",
        "CLI arguments",
        "`--radius` negative",
        lambda t: ["--radius", "-1", "--no-tracking", "--out", str(t / "o")],
    ),
    Case(
        "denoise",
        "CLI arguments",
        "`--original-kwargs` not JSON",
        _denoise(_ok_model, None, "--original-kwargs", "{dim: 8"),
    ),
    Case(
        "denoise",
        "CLI arguments",
        "`--tile` not a multiple of 32",
        _denoise(_ok_model, None, "--tile", "100"),
    ),
    # -- outputs
    Case(
        "ablations",
        "outputs",
        "`--out` is an existing file",
        lambda t: [*_study()(t), "--out", str(_write(t, "o", "x"))],
    ),
    Case(
        "correlation",
        "outputs",
        "`--out` is an existing file",
        lambda t: ["--data", str(_tree(t)), "--out", str(_write(t, "o", "x")), "--no-tracking"],
    ),
    Case(
        "evaluate",
        "outputs",
        "`--out` is an existing file",
        lambda t: ["--checkpoint", _ok_model(t), "--out", str(_write(t, "ev", "x")), "--no-tracking"],
    ),
]


# -------------------------------------------------------------------------------- running


def prepare(root: Path) -> None:
    """Make the valid tree the dataset cases start from (once)."""
    global _TREE
    _TREE = make_tree(root / "valid-sidd")


def run(case: Case, tmp: Path) -> tuple[int, str]:
    """The exit status of ``python jobs/<entry>.py ARGV`` and what it printed on stderr."""
    import importlib

    job = importlib.import_module(f"jobs.{case.entry}")
    argv = case.argv(tmp)
    err, out = io.StringIO(), io.StringIO()
    prog, sys.argv[0] = sys.argv[0], f"jobs/{case.entry}.py"  # argparse names the program by it
    # In the case's folder: whatever a job writes by default stays there.
    with contextlib.chdir(tmp), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = job.main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # a traceback: what no case may show
            return -1, f"UNCAUGHT {type(exc).__name__}: {exc}"
        finally:
            sys.argv[0] = prog
    return int(code), _shown(err.getvalue(), tmp)


def _shown(stderr: str, tmp: Path) -> str:
    """What the user sees, made comparable: argparse's error line alone (not its usage text), else
    every line; this run's folders shown as placeholders."""
    lines = [line.rstrip() for line in stderr.splitlines() if line.strip()]
    argparse_error = [line for line in lines if re.match(r"^\S+\.py: error: ", line)]
    text = "\n".join(argparse_error or lines)
    return text.replace(str(tmp), "<tmp>").replace(str(ROOT), ".")


def _subclasses(kind: type) -> list[str]:
    found, todo = [], list(kind.__subclasses__())
    while todo:
        cls = todo.pop(0)
        found.append(cls.__name__)
        todo += cls.__subclasses__()
    return sorted(found)


# Every module that defines an error class of the project, so that all of them are listed.
ERROR_MODULES = (
    "orchestrator.config",
    "orchestrator.cluster",
    "orchestrator.tracking",
    "orchestrator.data.files",
    "orchestrator.data.shards",
    "orchestrator.train.store",
    "orchestrator.study.records",
    "orchestrator.correlation.job",
    "orchestrator.data.images",
    "orchestrator.tools.load",
)


def exit_statuses() -> list[str]:
    """The table of exit statuses, from the error kinds in ``orchestrator.errors`` and the classes
    of the project that derive from each."""
    import importlib

    from orchestrator import errors

    for module in ERROR_MODULES:
        importlib.import_module(module)

    def row(kind: type, when: str, extra: str = "") -> str:
        names = ", ".join([*(f"`{n}`" for n in _subclasses(kind)), *([extra] if extra else [])])
        return f"| {errors.exit_status(kind())} | {when} | {names} |"

    return [
        "| exit | when | errors |",
        "|---|---|---|",
        "| 0 | everything asked for was done | |",
        row(errors.InputError, "the command line, a config, a dataset or an input image is refused"),
        row(
            errors.RunFailure,
            "the run failed: the cluster, storage, tracking or a stage (what finished is kept); "
            "`jobs/denoise.py` skipped some images (the others are written)",
            "`OSError`",
        ),
        row(
            errors.CheckpointUnusable,
            "a checkpoint, or a finished stage a plan relies on, is missing, unreadable or from another "
            "configuration",
        ),
        f"| {errors.exit_status(KeyboardInterrupt())} | interrupted (what finished is kept) "
        "| `KeyboardInterrupt` |",
    ]


def table(results: list[tuple[Case, int, str]]) -> str:
    head = [
        "# Bad input: what the user sees",
        "",
        "Every row is a case `tests/reliability/test_bad_inputs.py` runs through the job's own command",
        "line (`python jobs/<job>.py ...`); the text is what the job printed on stderr, with the",
        "case's temporary folder shown as `<tmp>`. The test fails when a job prints anything else, so",
        "this table is what the code does. After changing a message, write the table again with",
        "`python -m tests.reliability.bad_inputs --write`.",
        "",
        "The exit status is the same in every job for the same kind of error (`orchestrator/errors.py`):",
        "",
        *exit_statuses(),
        "",
        "The readers behind these rows are also fuzzed (`tests/reliability/test_fuzz.py`);",
        "[RELIABILITY.md](RELIABILITY.md) lists the faults injected into running jobs.",
        "",
    ]
    rows = []
    group = None
    for case, code, text in results:
        if case.group != group:
            group = case.group
            rows += [
                "",
                f"## {group[0].upper()}{group[1:]}",
                "",
                "| job | case | exit | what the user sees |",
                "|---|---|---|---|",
            ]
        shown = "<br>".join(_cell(line) for line in text.splitlines()) or "(nothing)"
        rows.append(f"| `{case.entry}` | {case.what} | {code} | {shown} |")
    return "\n".join(head + rows[1:]) + "\n"


def _cell(line: str) -> str:
    return "`" + line.replace("`", "'").replace("|", "\\|") + "`"


def run_all(root: Path) -> list[tuple[Case, int, str]]:
    prepare(root)
    results = []
    for i, case in enumerate(CASES):
        tmp = root / f"case{i:02d}"
        tmp.mkdir()
        code, text = run(case, tmp)
        results.append((case, code, text))
    return results


def main(argv: list[str] | None = None) -> int:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help=f"write {DOC.relative_to(ROOT)} (default: print)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        text = table(run_all(Path(d)))
    if args.write:
        DOC.write_text(text)
        print(f"wrote {DOC}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
