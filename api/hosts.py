"""Which hosts the operator may send a policy's requests to: the guard against request forgery.

A policy's author chooses `spec.prometheus.url` and the webhook URL in a Secret, and the operator
sends those requests from inside the cluster, where internal services answer. So the operator's
admin says which hosts are fair (`--allow-host`, repeatable); the host of the operator's own
`--prometheus-url` is always among them, and nothing else is unless listed.

A pattern is `host` (any port), `host:port`, `*.suffix` (any name under the suffix, any port) or
`*` (any host: the check is off). Names are compared as written, case-insensitively: no DNS
lookup is made, so a name that resolves to an internal address is as fair as the admin made it.

>>> from homeostat.api.hosts import HostAllowList
>>> hosts = HostAllowList.of(prometheus_url="http://prometheus.monitoring:9090", patterns=["*.hooks.example.com"])
>>> hosts.permits("http://prometheus.monitoring:9090/api"), hosts.permits("http://prometheus.monitoring:8080")
(True, False)
>>> hosts.permits("https://pager.hooks.example.com/x"), hosts.permits("http://10.0.0.1/")
(True, False)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


def host_and_port(url: str) -> tuple[str, int | None]:
    """The lower-cased host and the explicit port of `url` (None when the URL names none)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port


@dataclass(frozen=True, slots=True)
class HostAllowList:
    """The host patterns a policy's URLs may name."""

    patterns: tuple[str, ...]

    @classmethod
    def of(cls, *, prometheus_url: str | None, patterns: Iterable[str] = ()) -> HostAllowList:
        """The operator's list: its own Prometheus' host:port, then the admin's patterns."""
        found = [p.strip().lower() for p in patterns if p.strip()]
        if prometheus_url:
            host, port = host_and_port(prometheus_url)
            if host:
                name = f"[{host}]" if ":" in host else host
                found.insert(0, f"{name}:{port}" if port is not None else name)
        return cls(patterns=tuple(dict.fromkeys(found)))

    def permits(self, url: str) -> bool:
        host, port = host_and_port(url)
        return bool(host) and any(_matches(pattern, host, port) for pattern in self.patterns)

    def refusal(self, url: str, *, field: str) -> str:
        """What to tell the policy's author when `permits(url)` is False (host only, never the URL)."""
        host, port = host_and_port(url)
        shown = f"{host}:{port}" if port is not None else host or "(no host)"
        allowed = ", ".join(self.patterns) or "none"
        return (f"{field}: host {shown} is not in the operator's allow-list ({allowed}); ask the operator's admin "
                f"to add it with --allow-host, or use an allowed host")


def _matches(pattern: str, host: str, port: int | None) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("["):  # [::1] or [::1]:9090
        name, _, rest = pattern[1:].partition("]")
        want_port = rest.removeprefix(":")
    else:
        name, _, want_port = pattern.partition(":")
    if want_port and (port is None or str(port) != want_port):
        return False
    if name.startswith("*."):
        return host.endswith(name[1:])
    return host == name
