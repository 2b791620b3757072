"""Fixtures for the deployment tests: the repository root and `kubectl kustomize deploy/`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = shutil.which("kubectl")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def kustomized() -> list[dict[str, Any]]:
    """Every object `kubectl apply -k deploy/` would send, as kustomize renders them."""
    if KUBECTL is None:
        pytest.skip("kubectl is not installed: cannot render deploy/ with kustomize")
    done = subprocess.run([KUBECTL, "kustomize", str(ROOT / "deploy")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"kubectl kustomize deploy/ failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]
