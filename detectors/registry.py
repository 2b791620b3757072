"""Detectors by name.

``create(name, direction=..., sensitivity=...)`` builds a fresh detector for one series;
``names()`` lists what can be built. ``"default"`` is an alias of the detector that scores
best on the NAB evaluation (see ``docs/detectors.md``), not a matter of taste.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .base import Detector, Direction, parse_direction, parse_sensitivity

__all__ = ["DEFAULT", "create", "names", "register"]

Factory = Callable[[Direction, str], Detector]

_FACTORIES: dict[str, Factory] = {}

#: The detector that ``create("default")`` builds.
DEFAULT = "multiscale"


def register(name: str, factory: Factory) -> None:
    """Make ``factory(direction, sensitivity)`` available as ``create(name, ...)``."""
    if name == "default":
        raise ValueError("'default' is an alias and cannot be registered")
    _FACTORIES[name] = factory


def names() -> list[str]:
    """Every name ``create`` accepts, ``"default"`` included, sorted."""
    _register_builtins()
    return sorted([*_FACTORIES, "default"])


def create(name: str = "default", *, direction: Direction | str = "up", sensitivity: str = "medium") -> Detector:
    """Build a fresh detector by name.

    Raises ``KeyError`` for an unknown name and ``ValueError`` for an unknown direction or
    sensitivity; both messages list the valid choices.
    """
    _register_builtins()
    key = DEFAULT if name == "default" else name
    factory = _FACTORIES.get(key)
    if factory is None:
        raise KeyError(f"unknown detector {name!r}; valid names: {', '.join(names())}")
    return factory(parse_direction(direction), parse_sensitivity(sensitivity))


_BUILTINS_DONE = False
_REGISTERING = False
_BUILTINS_LOCK = threading.RLock()  # the first callers may come from several threads at once


def _adaptive_factory(cls: Callable[..., Detector], params: dict[str, float]) -> Factory:
    """A factory of ``cls(direction, sensitivity, **params)`` (one per registered variant)."""

    def make(direction: Direction, sensitivity: str) -> Detector:
        return cls(direction=direction, sensitivity=sensitivity, **params)

    return make


def _register_builtins() -> None:
    """Register the built-in detectors once; done only when all are registered (a caller in
    another thread waits instead of seeing a half-filled registry)."""
    global _BUILTINS_DONE, _REGISTERING
    if _BUILTINS_DONE:
        return
    with _BUILTINS_LOCK:
        if _BUILTINS_DONE or _REGISTERING:  # _REGISTERING: `register` calling back, in this thread
            return
        _REGISTERING = True
        try:
            _register_builtins_now()
            _BUILTINS_DONE = True
        finally:
            _REGISTERING = False


def _register_builtins_now() -> None:
    from .adaptive import VARIANTS, Adaptive
    from .dspot import DSpot
    from .ewma import EWMA
    from .forecast import HoltResidual
    from .hst import LagHalfSpaceTrees
    from .robust_zscore import RobustZScore
    from .seasonal import SeasonalBaseline

    for variant, params in VARIANTS.items():
        register(variant, _adaptive_factory(Adaptive, params))
    register("dspot", lambda d, s: DSpot(direction=d, sensitivity=s))
    register("ewma", lambda d, s: EWMA(direction=d, sensitivity=s))
    register("forecast", lambda d, s: HoltResidual(direction=d, sensitivity=s))
    register("hst", lambda d, s: LagHalfSpaceTrees(direction=d, sensitivity=s))
    register("robust_zscore", lambda d, s: RobustZScore(direction=d, sensitivity=s))
    register("seasonal", lambda d, s: SeasonalBaseline(direction=d, sensitivity=s))
