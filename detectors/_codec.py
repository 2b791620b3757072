"""Compact JSON-safe encodings for fixed-size numeric state (private helpers)."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = ["finite_or_none", "none_or_float", "pack_f32", "pack_u16", "unpack_f32", "unpack_u16"]


def pack_f32(values: Iterable[float] | np.ndarray) -> str:
    """Base64 of little-endian float32 (NaN preserved): 4 bytes per value instead of ~20 in JSON."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype="<f4")
    return base64.b64encode(arr.tobytes()).decode("ascii")


def unpack_f32(text: str) -> list[float]:
    """Inverse of `pack_f32`, as Python floats."""
    return [float(v) for v in np.frombuffer(base64.b64decode(text), dtype="<f4")]


def pack_u16(values: Sequence[int] | np.ndarray) -> str:
    """Base64 of little-endian uint16 (values are clipped to 0..65535)."""
    arr = np.clip(np.asarray(values, dtype=np.int64), 0, 65535).astype("<u2")
    return base64.b64encode(arr.tobytes()).decode("ascii")


def unpack_u16(text: str) -> list[int]:
    """Inverse of `pack_u16`."""
    return [int(v) for v in np.frombuffer(base64.b64decode(text), dtype="<u2")]


def finite_or_none(x: float) -> float | None:
    """JSON has no NaN: encode it as null."""
    return x if math.isfinite(x) else None


def none_or_float(x: float | None) -> float:
    """Inverse of `finite_or_none`."""
    return math.nan if x is None else float(x)
