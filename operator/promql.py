"""PromQL read once: each signal's query is parsed by `promql-parser` here, and the tree shared.

The settling time (`settling.py`: how far back the query reads) and the freshness check
(`freshness.py`: which selectors it reads) both walk the same tree; a policy's monitor is built
on every spec change and reads each query for both, so the parse is cached by query text. The
trees are only read, never changed. A query the parser cannot read raises ValueError (not
cached: each caller says what that means for it).
"""

from __future__ import annotations

import datetime  # noqa: F401 - promql_parser (pyo3) needs the datetime C API loaded before it
import functools
from typing import Any

import promql_parser


@functools.lru_cache(maxsize=1024)
def parse(query: str) -> Any:
    """The AST of `query` (a `promql_parser` node); ValueError if it does not parse."""
    return promql_parser.parse(query)
