"""The docstring examples of `homeostat.detectors` run, as River's do, and every detector has one.

Each module's doctests run with empty globals (not the module's): an example must import
what it uses, so that it runs as written when a reader pastes it. A failing example fails
its module's test with doctest's report. ``pytest --doctest-modules`` is not used: it would
collect ``operator/``, which shadows the standard library's ``operator``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import sys

import pytest

import homeostat.detectors
from homeostat.detectors import create, names

MODULES = ["homeostat.detectors"] + [
    m.name for m in pkgutil.walk_packages(homeostat.detectors.__path__, "homeostat.detectors.")
]
# The few runtime modules whose docstrings carry examples run the same way.
MODULES += ["homeostat.api.hosts", "homeostat.operator.prometheus"]
OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _run(name: str) -> tuple[doctest.TestResults, str]:
    module = importlib.import_module(name)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    for test in doctest.DocTestFinder().find(module, name, globs={}):
        runner.run(test, out=report.append)
    return runner.summarize(verbose=False), "".join(report)


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    results, report = _run(name)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {name}:\n{report}"


@pytest.mark.parametrize("detector", [n for n in names() if n != "default"])
def test_every_registered_detector_has_an_example(detector):
    module = type(create(detector)).__module__
    results, _ = _run(module)
    assert results.attempted > 0, f"{module} ({detector!r}) has no docstring example"


def test_a_failing_example_fails(tmp_path, monkeypatch):
    (tmp_path / "wrong_example.py").write_text('"""\n>>> 1 + 1\n3\n"""\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    results, report = _run("wrong_example")
    sys.modules.pop("wrong_example", None)
    assert (results.failed, results.attempted) == (1, 1)
    assert "Expected:\n    3\nGot:\n    2" in report
