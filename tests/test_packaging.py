"""What `pip install` ships: the configs and the rulebook are package data, usable from any directory;
the wheel installs into a fresh environment, where every module imports; pyproject declares every
third-party package that src/agrl imports."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What the build reads; everything else (.venv, runs, results, build/) stays behind.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "setup.py", "setup.cfg")


def _source_copy(dest: Path) -> Path:
    """A copy of the checkout holding only what the build reads, so that building leaves nothing in it."""
    dest.mkdir()
    shutil.copytree(
        ROOT / "src", dest / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    )
    for name in BUILD_INPUTS:
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)
    return dest


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the checkout, built offline (setuptools from this environment)."""
    source = _source_copy(tmp / "source")
    dist = tmp / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
        + ["-q", "-w", str(dist), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return next(dist.glob("agrl-*.whl"))


def _build_outputs() -> set[str]:
    """What a build run in the checkout would leave there."""
    return {
        str(p.relative_to(ROOT))
        for p in (*ROOT.iterdir(), *(ROOT / "src").iterdir())
        if p.name in ("build", "dist") or p.name.endswith((".egg-info", ".whl"))
    }


def _modules(package_dir: Path) -> list[str]:
    """Every module under `package_dir` (namespace subpackages such as agrl/train included)."""
    names = {
        ".".join(("agrl", *p.relative_to(package_dir).with_suffix("").parts)).removesuffix(".__init__")
        for p in package_dir.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    return sorted(names)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    before = _build_outputs()
    built = _build_wheel(tmp_path_factory.mktemp("wheel"))
    assert _build_outputs() == before, "building the wheel wrote into the checkout"
    return built


def test_the_wheel_ships_configs_and_rulebook(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (ROOT / "src" / "agrl" / "configs").glob("*.yaml")}
    assert {"agrl_tiny.yaml", "sft_tiny.yaml", "sft_gold_tiny.yaml"} <= shipped
    assert {f"agrl/configs/{n}" for n in shipped} <= names
    assert "agrl/rules/default.yaml" in names
    lexicon = {p.name for p in (ROOT / "src/agrl/data/annotate/lexicon").glob("*.yaml")}
    assert {"brand.yaml", "type.yaml"} <= lexicon
    assert {f"agrl/data/annotate/lexicon/{n}" for n in lexicon} <= names  # the annotator's word lists
    sources = {p.relative_to(ROOT / "src").as_posix() for p in (ROOT / "src" / "agrl").rglob("*.py")}
    assert sources <= names  # every module, subpackages included


def test_the_wheel_is_built_outside_the_checkout(wheel):
    assert not wheel.resolve().is_relative_to(ROOT)


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_every_module_imports(wheel, tmp_path):
    venv = tmp_path / "v"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    python = venv / "bin" / "python"
    # This environment's pip installs into the new one: no download, and no dependency is resolved.
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
        + [str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The dependencies come from this environment's site-packages (torch is not reinstalled). A
    # PYTHONPATH entry is no site directory, so the editable install's .pth finder does not load
    # there: `agrl` can only be the wheel's.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    env["PYTHONNOUSERSITE"] = "1"
    done = subprocess.run(
        [str(venv / "bin" / "agrl"), "--version"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"agrl {importlib.metadata.version('agrl')}"
    # Every module of the installed package, found on disk (pkgutil skips namespace subpackages).
    code = (
        "import importlib, json, pathlib, agrl, agrl.peers\n"
        "root = pathlib.Path(agrl.__file__).parent\n"
        "names = sorted({'.'.join(('agrl', *p.relative_to(root).with_suffix('').parts)).removesuffix('.__init__')\n"
        "                for p in root.rglob('*.py') if '__pycache__' not in p.parts})\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps({'file': agrl.__file__, 'modules': names}))\n"
    )
    done = subprocess.run(
        [str(python), "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(seen["file"]).resolve().is_relative_to(venv.resolve()), seen["file"]
    assert seen["modules"] == _modules(ROOT / "src" / "agrl")  # the wheel ships every module


@pytest.mark.slow  # ~15 s: two fresh interpreters import the trainers
def test_shipped_configs_resolve_outside_the_checkout(tmp_path):
    code = (
        "from agrl.configs import config_path; from agrl.experiments.shoprules import RL_CONFIGS; from agrl.train.config import AGRLConfig, load_config;"
        "args = load_config(AGRLConfig, config_path(RL_CONFIGS['agrl']), ['--output_dir', 'o']);"
        "print(args.guidance_start_level, args.replay_k)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["2", "4"]  # the values tuned on dev
    done = subprocess.run(
        [sys.executable, "-m", "agrl.cli", "train", "agrl", "--config", "no_such.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode != 0 and "shipped configs" in done.stderr


# --- declared dependencies -------------------------------------------------------------------------


def _third_party_imports() -> dict[str, set[str]]:
    """{top-level module: files importing it} over src/agrl, imports inside functions included."""
    stdlib = sys.stdlib_module_names
    found: dict[str, set[str]] = {}
    for path in (ROOT / "src" / "agrl").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in stdlib and top not in ("agrl", "__future__"):
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_pyproject_declares_every_third_party_import():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {
        _canonical(re.split(r"[\s<>=!~;\[(]", spec, maxsplit=1)[0]) for spec in project["dependencies"]
    }
    providers = importlib.metadata.packages_distributions()
    imports = _third_party_imports()
    assert {"torch", "transformers", "trl", "numpy", "sklearn"} <= set(imports)  # the scan sees them
    missing = {
        module: sorted(files)
        for module, files in imports.items()
        if not {_canonical(d) for d in providers.get(module, [])} & declared
    }
    assert not missing, f"imported but not declared in pyproject [project] dependencies: {missing}"


def test_torch_stays_on_the_pinned_minor():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    (torch,) = [d for d in project["dependencies"] if _canonical(re.split(r"[\s<>=!~;]", d)[0]) == "torch"]
    assert "==2.13.0" in torch or "<2.14" in torch.replace(" ", ""), torch
    pins = (ROOT / "requirements.txt").read_text(encoding="utf-8").split()
    assert "torch==2.13.0" in pins
