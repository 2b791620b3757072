"""The examples in the detectors' docstrings run, as River's do: each is a test, and every
estimator module shows one. Also the examples of the few runtime modules that carry them."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import homeostat.detectors
from homeostat.detectors.base import BaseDetector

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
RUNTIME_WITH_EXAMPLES = ["homeostat.api.hosts", "homeostat.operator.prometheus"]


def _detector_modules() -> list[str]:
    found = [homeostat.detectors.__name__]
    found += [m.name for m in pkgutil.walk_packages(homeostat.detectors.__path__, "homeostat.detectors.")]
    return sorted(found)


def _estimators(module: ModuleType) -> list[type]:
    return [obj for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, BaseDetector) and obj is not BaseDetector and obj.__module__ == module.__name__
            and not inspect.isabstract(obj)]


@pytest.mark.parametrize("name", _detector_modules() + RUNTIME_WITH_EXAMPLES)
def test_the_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=FLAGS, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (run it for the diff)"
    if _estimators(module) or name in RUNTIME_WITH_EXAMPLES:
        assert result.attempted > 0, f"{name} defines an estimator but shows no runnable example"
