"""constraints.txt (the image's runtime pins, from deploy/freeze.py) and deploy/build-constraints.txt.

Checked without a network: every dependency of the project is pinned at a version its specifier
accepts, pins are exact and unique, and for every pinned package that is installed here at the
pinned version, its own requirements are pinned too (the closure is complete). Versions that
differ from this environment are not an error: a fresh `pip install -e .[dev]` may pick newer ones.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")


def read_pins(path: Path) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.match(line.strip())
        assert match, f"{path.name}:{number}: not an exact pin: {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[name] = Version(match.group(2))
    return pins


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def test_every_runtime_dependency_is_pinned_within_its_specifier(pyproject: dict[str, Any]) -> None:
    pins = read_pins(ROOT / "constraints.txt")
    for text in pyproject["project"]["dependencies"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is a dependency but not pinned: python deploy/freeze.py"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {text!r}"


def test_no_test_or_lab_tool_is_pinned_for_the_image(pyproject: dict[str, Any]) -> None:
    pins = read_pins(ROOT / "constraints.txt")
    runtime = {canonicalize_name(Requirement(t).name) for t in pyproject["project"]["dependencies"]}
    extras = {canonicalize_name(Requirement(t).name) for group in pyproject["project"]["optional-dependencies"].values()
              for t in group} - runtime
    assert not extras & pins.keys(), f"test or lab tools in the runtime pins: {sorted(extras & pins.keys())}"


def test_the_closure_is_complete_where_this_environment_matches() -> None:
    pins = read_pins(ROOT / "constraints.txt")
    checked = 0
    for name, version in pins.items():
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != version:
            continue
        checked += 1
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # optional extras and other platforms/Pythons
            sub = canonicalize_name(req.name)
            assert sub in pins, f"{name}=={version} requires {text!r}, which constraints.txt does not pin"
            assert req.specifier.contains(pins[sub], prereleases=True), (
                f"{name}=={version} requires {text!r} but {sub}=={pins[sub]} is pinned")
    if not checked:
        pytest.skip("no pinned version is installed here: nothing to compare the closure with")


def test_the_build_backend_is_pinned(pyproject: dict[str, Any]) -> None:
    pins = read_pins(ROOT / "deploy" / "build-constraints.txt")
    for text in pyproject["build-system"]["requires"]:
        req = Requirement(text)
        name = canonicalize_name(req.name)
        assert name in pins, f"build requirement {text!r} is not in deploy/build-constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {text!r}"
