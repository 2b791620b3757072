"""One policy cannot take the operator's memory: answers are read up to a budget, range
queries are cut in time, and what is not Prometheus' own error text never reaches a message."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator

import pytest

from homeostat.operator.prometheus import AnswerTooLarge, PrometheusSource, PrometheusUnavailable, range_chunks


def test_range_chunks_cover_the_range_once_oldest_first_within_the_point_limit() -> None:
    for start, end, step, most in [(0.0, 86_400.0, 5.0, 1000), (100.0, 100.0, 30.0, 1000), (0.0, 59.0, 1.0, 7),
                                   (0.0, 10.0, 3.0, 1)]:
        chunks = range_chunks(start=start, end=end, step=step, max_points=most)
        points = [t for left, right in chunks for t in _grid(left, right, step)]
        assert points == _grid(start, end, step)  # every step once, in order: nothing learned twice
        assert all(len(_grid(left, right, step)) <= most for left, right in chunks)
    assert len(range_chunks(start=0.0, end=86_400.0, step=5.0)) == 18  # 17,281 points; Prometheus takes 11,000


def _grid(left: float, right: float, step: float) -> list[float]:
    """The times Prometheus evaluates a range query at: left, left + step, ... up to right."""
    out, t = [], left
    while t <= right:
        out.append(t)
        t += step
    return out


class _Server:
    """An HTTP server answering every GET with one canned response."""

    def __init__(self, *, status: int, body: bytes, content_type: str, chunked: bool) -> None:
        self.status, self.body, self.content_type, self.chunked = status, body, content_type, chunked
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self.send_response(outer.status)
                self.send_header("Content-Type", outer.content_type)
                if outer.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    try:
                        for i in range(0, len(outer.body), 1 << 16):
                            part = outer.body[i:i + (1 << 16)]
                            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                        self.wfile.write(b"0\r\n\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client stopped reading: what the budget is for
                else:
                    self.send_header("Content-Length", str(len(outer.body)))
                    self.end_headers()
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _matrix(series: int, points: int) -> bytes:
    result = [{"metric": {"pod": f"p{i}"}, "values": [[1_800_000_000 + j, "1"] for j in range(points)]}
              for i in range(series)]
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}}).encode()


@pytest.fixture(params=[False, True], ids=["content-length", "chunked"])
def chunked(request: pytest.FixtureRequest) -> Iterator[bool]:
    yield bool(request.param)


def test_an_answer_over_the_budget_is_refused_unread_naming_the_query_and_the_fix(chunked: bool) -> None:
    body = _matrix(series=200, points=100)  # ~1.2 MB
    server = _Server(status=200, body=body, content_type="application/json", chunked=chunked)
    try:
        small = PrometheusSource(url=server.url, timeout=5, max_answer_bytes=len(body) // 4)
        with pytest.raises(AnswerTooLarge) as refused:
            small.range("up", start=0, end=100, step=1)
        message = str(refused.value)
        assert "'up'" in message and "aggregate" in message and "MiB" in message
        roomy = PrometheusSource(url=server.url, timeout=5, max_answer_bytes=len(body))
        assert len(roomy.range("up", start=0, end=100, step=1)) == 200  # the same answer, within budget
    finally:
        server.close()


def test_a_page_that_is_not_prometheus_error_json_never_reaches_the_message() -> None:
    page = b"<html>internal admin console: db-password=hunter2</html>"
    server = _Server(status=502, body=page, content_type="text/html; charset=utf-8", chunked=False)
    try:
        with pytest.raises(PrometheusUnavailable) as failed:
            PrometheusSource(url=server.url, timeout=5).instant("up", at=1_800_000_000)
        assert "HTTP 502" in str(failed.value) and "text/html" in str(failed.value)
        assert "hunter2" not in str(failed.value) and "admin" not in str(failed.value)
    finally:
        server.close()
