"""A metrics endpoint that a test or the lab drives directly.

Serves its own prometheus_client registry on 127.0.0.1 so a real Prometheus scrapes it.
Tests set gauge values to make exactly the series they need (a spike, a per-pod fleet,
NaN); the simulated services of the lab publish through the same class.
"""

from __future__ import annotations

from types import TracebackType

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from homeostat.lab.prometheus import free_port


class Exporter:
    """A /metrics endpoint on its own port with its own registry."""

    def __init__(self, *, port: int | None = None) -> None:
        self.registry = CollectorRegistry()
        self.port = port or free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._server: object | None = None
        self._gauges: dict[str, Gauge] = {}

    def start(self) -> Exporter:
        server, _thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]

    def gauge(self, name: str, labelnames: tuple[str, ...] = ()) -> Gauge:
        """A gauge registered once by name (later calls return the same one)."""
        if name not in self._gauges:
            self._gauges[name] = Gauge(name, f"lab gauge {name}", labelnames, registry=self.registry)
        return self._gauges[name]

    def __enter__(self) -> Exporter:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
