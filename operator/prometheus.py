"""Reading series from Prometheus: the `queries -> series` step.

A thin layer over `prometheus-api-client` that turns its answers into plain samples and its
failures into three kinds the monitor treats differently: the query was rejected (the policy
is wrong: tell the user which signal), Prometheus could not be reached or failed (no data:
never act), or it answered with something we cannot read. Calls are blocking; the monitor
runs them in a worker thread so the event loop keeps serving other policies.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

POOL_SIZE = 32
"""Connections kept per Prometheus server: the operator's I/O worker threads (operator/command.py)."""


class QueryError(Exception):
    """A query gave no usable answer."""


class QueryRejected(QueryError):
    """Prometheus refused the query itself (HTTP 400/422): the PromQL is wrong."""


class PrometheusUnavailable(QueryError):
    """Prometheus could not be reached, timed out, or failed (5xx)."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One series' value at the evaluation time."""

    labels: Mapping[str, str]
    t: float
    value: float


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series' points over a range, oldest first."""

    labels: Mapping[str, str]
    points: list[tuple[float, float]]


def _parse_value(raw: str) -> float:
    """Prometheus encodes values as strings, including 'NaN' and '+Inf'."""
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


class PrometheusSource:
    """Instant and range queries against one Prometheus server."""

    def __init__(self, *, url: str, timeout: float, bearer_token: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        # One quick retry at most: the monitor's own interval is the real retry loop, and a
        # long urllib3 backoff would stall the cycle of a policy whose Prometheus is down.
        # Status codes are not retried either, so a 503 reaches us with Prometheus' own message.
        retry = Retry(total=1, connect=1, read=0, status=0, backoff_factor=0.1, raise_on_status=False)
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._client = PrometheusConnect(url=self.url, headers=headers, retry=retry, timeout=timeout)
        # The client mounts an adapter that keeps 10 connections; one source serves every
        # policy on this Prometheus from a pool of worker threads, so keep as many as workers.
        self._client._session.mount(self.url, HTTPAdapter(max_retries=retry, pool_maxsize=POOL_SIZE))

    def close(self) -> None:
        self._client.close()

    def instant(self, query: str, *, at: float) -> list[Sample]:
        """Evaluate `query` at unix time `at`."""
        result = self._call(lambda: self._client.custom_query(query, params={"time": f"{at:.3f}"}))
        samples = []
        for item in result:
            t, raw = item.get("value", (at, "NaN"))
            samples.append(Sample(labels=dict(item.get("metric", {})), t=float(t), value=_parse_value(raw)))
        return samples

    def range(self, query: str, *, start: float, end: float, step: float) -> list[RangeSeries]:
        """Evaluate `query` every `step` seconds from `start` to `end`."""
        result = self._call(
            lambda: self._client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=f"{max(step, 0.001):g}",  # float seconds: Prometheus durations have no decimals
            )
        )
        return [
            RangeSeries(
                labels=dict(item.get("metric", {})),
                points=[(float(t), _parse_value(raw)) for t, raw in item.get("values", [])],
            )
            for item in result
        ]

    def _call(self, request: Any) -> list[dict[str, Any]]:
        try:
            result = request()
        except PrometheusApiClientException as exc:
            text = str(exc)
            if "HTTP Status Code 400" in text or "HTTP Status Code 422" in text:
                raise QueryRejected(_error_message(text)) from exc
            raise PrometheusUnavailable(f"Prometheus at {self.url} failed: {_error_message(text)}") from exc
        except requests.exceptions.Timeout as exc:
            raise PrometheusUnavailable(
                f"Prometheus at {self.url} did not answer within {self.timeout:g}s"
            ) from exc
        except requests.exceptions.RequestException as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.url} is unreachable: {type(exc).__name__}") from exc
        except (ValueError, KeyError) as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.url} gave an unreadable answer") from exc
        if not isinstance(result, list):
            raise PrometheusUnavailable(f"Prometheus at {self.url} gave an unreadable answer")
        return result


class SourcePool:
    """One `PrometheusSource` per (URL, timeout, token), shared by every policy that uses it.

    A source per policy meant a keep-alive connection per policy: at 1,000 policies that is
    over Prometheus' default limit of 512 connections, and the operator stalled (bench/scale.py).
    """

    def __init__(self) -> None:
        self._sources: dict[tuple[str, float, str | None], PrometheusSource] = {}
        self._lock = threading.Lock()

    def get(self, *, url: str, timeout: float, bearer_token: str | None = None) -> PrometheusSource:
        key = (url.rstrip("/"), timeout, bearer_token)
        with self._lock:
            source = self._sources.get(key)
            if source is None:
                source = self._sources[key] = PrometheusSource(url=url, timeout=timeout, bearer_token=bearer_token)
            return source

    def close(self) -> None:
        with self._lock:
            for source in self._sources.values():
                source.close()
            self._sources.clear()


def _error_message(text: str) -> str:
    """Pull Prometheus' own `error` field out of the client's exception text."""
    import ast
    import json

    marker = "(b"
    if marker in text:
        try:
            body = ast.literal_eval(text[text.index(marker) + 1 : text.rindex(")")])
            payload = json.loads(body)
            return str(payload.get("error") or payload)
        except (ValueError, SyntaxError, json.JSONDecodeError):
            pass
    return text
