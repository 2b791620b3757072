"""Checking a policy before anything runs: every problem names its field and the fix.

Pydantic does the type and range checks; this module turns its errors into messages an SRE
can act on (`spec.interval: "5x" is not a duration; write it like 30s, 5m or 1h30m`) and adds
the checks that need the registry (unknown detector names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from homeostat.api.durations import DURATION_PATTERN
from homeostat.api.policy import PolicySpec
from homeostat.detectors import names as detector_names


@dataclass(frozen=True, slots=True)
class SpecProblem:
    """One thing wrong with a spec, with the field path as kubectl users write it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InvalidSpec(Exception):
    """The spec cannot be acted upon."""

    def __init__(self, problems: Sequence[SpecProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = list(problems)


def field_path(loc: Sequence[int | str], root: str = "spec") -> str:
    """`('signals', 0, 'detector', 'name')` -> `spec.signals[0].detector.name`."""
    path = root
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    context = error.get("ctx") or {}
    if kind == "missing":
        return "is required; add it"
    if kind == "extra_forbidden":
        return "is not a known field; remove it or check its spelling"
    if kind == "string_pattern_mismatch" and context.get("pattern") == DURATION_PATTERN:
        return f"{value!r} is not a duration; write it like 30s, 5m or 1h30m"
    if kind == "string_pattern_mismatch":
        return f"{value!r} does not match {context.get('pattern')}; use lowercase letters, digits and '-'"
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if value is not None and not isinstance(value, dict | list):
        return f"{error['msg']} (got {value!r})"
    return str(error["msg"])


def validate_spec(raw: Mapping[str, Any] | None) -> PolicySpec:
    """Return the validated spec or raise `InvalidSpec` listing every problem."""
    if not raw:
        raise InvalidSpec([SpecProblem("spec", "is empty; a policy needs spec.target and spec.signals")])
    problems: list[SpecProblem] = []
    target = raw.get("target")
    if isinstance(target, Mapping) and "namespace" in target:
        problems.append(
            SpecProblem(
                "spec.target.namespace",
                "a policy only acts on workloads in its own namespace; remove the field and create "
                "the policy in the workload's namespace",
            )
        )
        raw = {**raw, "target": {k: v for k, v in target.items() if k != "namespace"}}
    try:
        spec = PolicySpec.model_validate(dict(raw))
    except ValidationError as exc:
        for error in exc.errors():
            loc = [part for part in error["loc"] if part not in ("function-after[_ordered(), GuardSpec]",)]
            problems.append(SpecProblem(field_path(loc), _message(error)))
        raise InvalidSpec(problems) from None
    known = detector_names()
    for index, signal in enumerate(spec.signals):
        if signal.detector.name not in known:
            problems.append(
                SpecProblem(
                    f"spec.signals[{index}].detector.name",
                    f"unknown detector {signal.detector.name!r}; use one of: {', '.join(known)}",
                )
            )
    if problems:
        raise InvalidSpec(problems)
    return spec
