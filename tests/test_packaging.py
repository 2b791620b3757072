"""The project installs as one import package, `homeostat`, and shadows nothing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_import_operator_is_the_standard_library(tmp_path: Path) -> None:
    done = _run("import operator, homeostat.operator; print(operator.__file__); print(operator.itemgetter)", tmp_path)
    assert done.returncode == 0, done.stderr
    path = done.stdout.splitlines()[0]
    assert "site-packages" not in path and "/work/" not in path and path.endswith("operator.py")
    assert Path(path).parent == Path(subprocess.__file__).parent  # the stdlib folder


def test_subpackages_are_not_top_level_modules(tmp_path: Path) -> None:
    for name in ("detectors", "playbooks", "api", "lab"):
        done = _run(f"import {name}", tmp_path)
        assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr, name
    done = _run("import homeostat.detectors, homeostat.playbooks, homeostat.api, homeostat.lab", tmp_path)
    assert done.returncode == 0, done.stderr


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    assert found == listed, f"add to or remove from pyproject packages: {sorted(found ^ listed)}"


def test_console_script_dispatches(tmp_path: Path) -> None:
    # The venv's own script, next to its python: not whichever `homeostat` is first on PATH (on a
    # fresh machine none is: nothing puts .venv/bin on PATH).
    script = Path(sys.executable).parent / "homeostat"
    assert script.is_file(), f"{script} is missing: the package is not installed in this venv (make install)"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for command in ("run", "demo", "crds", "eval"):
        assert command in done.stdout
