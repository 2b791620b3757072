"""Reading series from Prometheus: the `queries -> series` step.

Plain HTTP requests to the Prometheus query API (`requests`, one pooled session per server)
whose answers become plain samples and whose failures become four kinds the monitor treats
differently: the query was rejected (the policy is wrong: tell the user which signal),
Prometheus could not be reached or failed (no data: never act), it answered with something we
cannot read (the same), or it answered but said the answer is incomplete (a partial response,
no data unless the policy accepts them). The raw JSON is read, not a client library's
`data.result`, because the `warnings` and `isPartial` fields that say "incomplete" sit beside it.

Every message that names the server shows its URL redacted (`redact_url`): no userinfo, no
query-string values, since either may hold a credential and the messages go into the policy's
status and Events. Calls are blocking; the monitor runs them in a worker thread so the event
loop keeps serving other policies.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

POOL_SIZE = 32
MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""Bytes of one answer read at the most: about 1,000 series of 1,000 points each, in Prometheus'
JSON. A larger answer is refused (`AnswerTooLarge`) before it is decoded; range queries are
split in time (`range_chunks`) so that a back-fill stays under it."""

MAX_POINTS_PER_QUERY = 1000
"""Steps of one range query at the most. Prometheus refuses more than 11,000 points per series
outright; smaller chunks also bound each answer's size and the detector work done between two
yields to the event loop."""
"""Connections kept per Prometheus server: the operator's I/O worker threads (operator/command.py)."""

ANNOTATION_PREFIXES = ("PromQL info:", "PromQL warning:")
"""Warnings that Prometheus' PromQL engine adds about the query itself ("metric might not be a
counter", "bucket label le is missing"): they say nothing about missing data, so they never make
an answer partial. Every other warning (a remote-read or store failure, Thanos' partial response)
does."""


class QueryError(Exception):
    """A query gave no usable answer."""


class QueryRejected(QueryError):
    """Prometheus refused the query itself (HTTP 400/422): the PromQL is wrong."""


class AnswerTooLarge(QueryRejected):
    """The answer passed the size budget (`MAX_ANSWER_BYTES`) and was dropped unread.

    A rejection, not an outage: the query selects too much (an un-aggregated selector over a
    large fleet), and asking again gives the same answer. The operator reads at most the budget
    and never decodes the rest, so one policy cannot take the leader's memory.
    """


class PrometheusUnavailable(QueryError):
    """Prometheus could not be reached, timed out, failed (5xx) or answered unreadably."""


class PartialResponse(QueryError):
    """Prometheus (or Thanos, Mimir, VictoriaMetrics) answered but said the answer is incomplete.

    The answer is kept in `samples` (instant queries) or `series` (range queries), for a policy
    that accepts partial answers (`spec.prometheus.partialResponse: accept`).
    """

    def __init__(self, message: str, *, samples: list[Sample] | None = None,
                 series: list[RangeSeries] | None = None) -> None:
        super().__init__(message)
        self.samples = samples or []
        self.series = series or []


@dataclass(frozen=True, slots=True)
class Sample:
    """One series' value at the evaluation time.

    `stale` is empty for a usable sample; otherwise it says why the sample is too old to be
    judged (set by the monitor's freshness check, `operator/freshness.py`).
    """

    labels: Mapping[str, str]
    t: float
    value: float
    stale: str = ""


@dataclass(frozen=True, slots=True)
class RangeSeries:
    """One series' points over a range, oldest first."""

    labels: Mapping[str, str]
    points: list[tuple[float, float]]


def _parse_value(raw: object) -> float:
    """Prometheus encodes values as strings, including 'NaN' and '+Inf'."""
    try:
        return float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def redact_url(url: str) -> str:
    """`url` fit for a message: userinfo replaced by `***`, every query-string value by `***`,
    no fragment. `http://u:p@prom:9090/x?token=s&a` -> `http://***@prom:9090/x?token=***&a`."""
    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        netloc = f"***@{host}" if "@" in parts.netloc else host
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unparseable URL>"
    query = "&".join(f"{quote(key, safe='')}=***" if value else quote(key, safe="") for key, value in pairs)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class _RedactSecrets(logging.Filter):
    """Takes the credentials of Prometheus URLs out of urllib3's log records: its retry warning
    and its debug lines name the request's path and query string, the URL's own tokens included."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, url: str) -> None:
        parts = urlsplit(url)
        values = [unquote(parts.password or ""), *(value for _, value in parse_qsl(parts.query))]
        for value in values:
            if len(value) >= 4:  # shorter is no secret, and would blank out unrelated text
                self.secrets.update({value, quote(value, safe=""), quote_plus(value)})

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = original = record.getMessage()
            for secret in self.secrets:
                message = message.replace(secret, "***")
            if message != original:
                record.msg, record.args = message, None
        return True


_REDACT = _RedactSecrets()
for _name in ("urllib3.connectionpool", "urllib3.util.retry", "urllib3.poolmanager"):
    logging.getLogger(_name).addFilter(_REDACT)


def partial_reason(payload: Mapping[str, Any]) -> str | None:
    """Why an answer with status "success" is incomplete, or None when it is complete.

    VictoriaMetrics sets `isPartial: true`; Prometheus (failed remote reads), Thanos and Mimir say
    it in `warnings`. PromQL's own annotations (ANNOTATION_PREFIXES) and `infos` are not partial.
    """
    if payload.get("isPartial") is True:
        return "the answer says isPartial: true"
    warnings = payload.get("warnings") or []
    if not isinstance(warnings, list):
        warnings = [warnings]
    partial = [str(w) for w in warnings if not str(w).startswith(ANNOTATION_PREFIXES)]
    if partial:
        text = "; ".join(partial)
        return f"warnings: {text[:300]}{'...' if len(text) > 300 else ''}"
    return None


class PrometheusSource:
    """Instant and range queries against one Prometheus server."""

    def __init__(self, *, url: str, timeout: float, bearer_token: str | None = None,
                 max_answer_bytes: int = MAX_ANSWER_BYTES) -> None:
        parts = urlsplit(url)
        self.max_answer_bytes = max_answer_bytes
        # The API paths go after the URL's own path; its query string (a proxy's token, say) is
        # kept on every request. Userinfo stays in the URL: requests sends it as basic auth.
        self._query_url = urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/") + "/api/v1/query", parts.query, ""))
        self._range_url = urlunsplit(
            (parts.scheme, parts.netloc, parts.path.rstrip("/") + "/api/v1/query_range", parts.query, ""))
        self.url = redact_url(url.rstrip("/"))  # what messages show
        _REDACT.add(url)
        self.timeout = timeout
        # One quick retry at most: the monitor's own interval is the real retry loop, and a
        # long urllib3 backoff would stall the cycle of a policy whose Prometheus is down.
        # Status codes are not retried either, so a 503 reaches us with Prometheus' own message.
        retry = Retry(total=1, connect=1, read=0, status=0, backoff_factor=0.1, raise_on_status=False)
        self._session = requests.Session()
        # One source serves every policy on this Prometheus from a pool of worker threads, so
        # keep as many connections as workers.
        adapter = HTTPAdapter(max_retries=retry, pool_maxsize=POOL_SIZE)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        if bearer_token:
            self._session.headers["Authorization"] = f"Bearer {bearer_token}"

    def close(self) -> None:
        self._session.close()

    def instant(self, query: str, *, at: float) -> list[Sample]:
        """Evaluate `query` at unix time `at`; PartialResponse (with the samples) when incomplete."""
        payload = self._get(self._query_url, {"query": query, "time": f"{at:.3f}"})
        kind, result = payload["data"].get("resultType"), payload["data"].get("result")
        try:
            if kind == "scalar":
                samples = [Sample(labels={}, t=float(result[0]), value=_parse_value(result[1]))]
            elif kind == "vector":
                samples = []
                for item in result:
                    t, raw = item.get("value", (at, "NaN"))  # a native histogram has no "value": NaN
                    samples.append(Sample(labels=dict(item.get("metric", {})), t=float(t), value=_parse_value(raw)))
            else:
                raise ValueError(kind)
        except (TypeError, ValueError, KeyError, IndexError, AttributeError):
            raise PrometheusUnavailable(f"Prometheus at {self.url} gave an unreadable answer") from None
        reason = partial_reason(payload)
        if reason is not None:
            raise PartialResponse(f"Prometheus at {self.url} answered partially: {reason}", samples=samples)
        return samples

    def range(self, query: str, *, start: float, end: float, step: float) -> list[RangeSeries]:
        """Evaluate `query` every `step` seconds from `start` to `end`."""
        payload = self._get(self._range_url, {
            "query": query, "start": str(round(start)), "end": str(round(end)),
            "step": f"{max(step, 0.001):g}",  # float seconds: Prometheus durations have no decimals
        })
        try:
            series = [
                RangeSeries(
                    labels=dict(item.get("metric", {})),
                    points=[(float(t), _parse_value(raw)) for t, raw in item.get("values", [])],
                )
                for item in payload["data"]["result"]
            ]
        except (TypeError, ValueError, KeyError, AttributeError):
            raise PrometheusUnavailable(f"Prometheus at {self.url} gave an unreadable answer") from None
        reason = partial_reason(payload)
        if reason is not None:
            raise PartialResponse(f"Prometheus at {self.url} answered partially: {reason}", series=series)
        return series

    def _get(self, url: str, params: dict[str, str]) -> dict[str, Any]:
        """The decoded answer of a successful API call (status "success", with `data`)."""
        try:
            with self._session.get(url, params=params, timeout=self.timeout, stream=True) as response:
                body = self._read_bounded(response, query=params.get("query", ""))
        # `from None`: requests' own messages name the URL they tried, query string included, and
        # a logged traceback would show them.
        except requests.exceptions.Timeout:
            raise PrometheusUnavailable(f"Prometheus at {self.url} did not answer within {self.timeout:g}s") from None
        except requests.exceptions.RequestException as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.url} is unreachable: {type(exc).__name__}") from None
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        error = _error_text(payload, response)
        if response.status_code in (400, 422):
            raise QueryRejected(error)
        if response.status_code != 200:
            raise PrometheusUnavailable(f"Prometheus at {self.url} failed: {error}")
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            raise PrometheusUnavailable(f"Prometheus at {self.url} gave an unreadable answer")
        if payload.get("status") != "success":
            raise PrometheusUnavailable(f"Prometheus at {self.url} failed: {error}")
        return payload


    def _read_bounded(self, response: requests.Response, *, query: str) -> bytes:
        """The body, read in chunks; AnswerTooLarge as soon as it passes the budget."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.max_answer_bytes:
            raise AnswerTooLarge(_too_large(query, self.max_answer_bytes))
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=1 << 16):
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise AnswerTooLarge(_too_large(query, self.max_answer_bytes))
            chunks.append(chunk)
        return b"".join(chunks)


def _too_large(query: str, budget: int) -> str:
    return (f"the answer to {query!r} is larger than {budget // (1024 * 1024)} MiB and was not read: "
            "the query selects too many series; aggregate it (e.g. `sum by (pod) (...)`) "
            "or narrow its selector")


def range_chunks(*, start: float, end: float, step: float,
                 max_points: int = MAX_POINTS_PER_QUERY) -> list[tuple[float, float]]:
    """[start, end] cut into consecutive ranges of at most `max_points` steps, oldest first.

    Chunks do not overlap: each starts one step after the previous one ends, so no point is
    learned twice.

    >>> from homeostat.operator.prometheus import range_chunks
    >>> range_chunks(start=0, end=25, step=10, max_points=2)
    [(0, 10), (20, 25)]
    """
    chunks: list[tuple[float, float]] = []
    span = step * (max_points - 1)
    left = start
    while left <= end:
        right = min(left + span, end)
        chunks.append((left, right))
        left = right + step
    return chunks


def _error_text(payload: object, response: requests.Response) -> str:
    """Prometheus' own `error` field, or only the HTTP status.

    Never the body of an answer that is not Prometheus' error JSON: the message goes into the
    policy's status, and a URL pointed at some internal service would read its page back there.
    """
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        return str(payload["error"])[:500]
    kind = response.headers.get("Content-Type", "").split(";")[0].strip()
    return f"HTTP {response.status_code}" + (f" ({kind}, body not shown)" if kind else "")


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
