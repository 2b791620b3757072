"""The custom resources as pydantic models: the single source of truth for the CRDs."""

from homeostat.api.base import API_VERSION, GROUP, VERSION
from homeostat.api.durations import format_duration, parse_duration
from homeostat.api.incident import IncidentPhase, IncidentSpec, IncidentStatus
from homeostat.api.policy import PolicySpec
from homeostat.api.status import PolicyPhase, PolicyStatus

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "IncidentPhase",
    "IncidentSpec",
    "IncidentStatus",
    "PolicyPhase",
    "PolicySpec",
    "PolicyStatus",
    "format_duration",
    "parse_duration",
]
