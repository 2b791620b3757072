"""notify: the webhook URL read from a Secret, JSON and Slack bodies POSTed to a local receiver,
retries on 5xx and connection errors (3 tries), and the URL never shown."""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from homeostat.api.hosts import HostAllowList
from homeostat.api.incident import IncidentPhase, InvolvedSeries
from homeostat.lab.harness import deployment
from homeostat.lab.prometheus import free_port
from homeostat.playbooks.actions import notify
from homeostat.playbooks.base import Outcome

from .conftest import context, since

TOKEN = "T000/B000/s3cr3t-t0k3n"  # what a Slack webhook URL carries: must never be shown


class Receiver:
    """A webhook endpoint on 127.0.0.1 answering the scripted statuses (then 200) and keeping what it got."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, str], Any]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.received.append((dict(self.headers), json.loads(body)))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/services/{TOKEN}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def bodies(self) -> list[Any]:
        return [body for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Any]:
    receivers: list[Receiver] = []

    def start(statuses: list[int] | None = None) -> Receiver:
        started = Receiver(statuses or [])
        started.thread.start()
        receivers.append(started)
        return started

    yield start
    for started in receivers:
        started.server.shutdown()
        started.server.server_close()


def secret(cluster, name, url):
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "shop"},
                   "data": {"url": base64.b64encode(url.encode()).decode()}})


def hook(name, fmt="json"):
    return {"urlSecretRef": {"name": name, "key": "url"}, "format": fmt}


INVOLVED = [InvolvedSeries(signal="latency", labels={"pod": "web-abc12"}, observed=0.9, expected=0.2, lower=0.1,
                           upper=0.3, score=7.5)]


def notify_ctx(api, *hooks, **kwargs):
    return context(api, "notify", involved=INVOLVED, notify={"webhooks": list(hooks)}, **kwargs)


async def test_a_json_and_a_slack_webhook_get_the_incident(cluster, api, receiver):
    cluster.apply(deployment("web"))
    plain, slack = receiver(), receiver()
    secret(cluster, "hook", plain.url)
    secret(cluster, "slack", slack.url)

    done = await notify.perform(notify_ctx(api, hook("hook"), hook("slack", "slack")))

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert plain.bodies == [{
        "incident": "inc-1", "policy": "checkout-latency", "namespace": "shop",
        "target": {"kind": "Deployment", "name": "web"}, "phase": "Remediating",
        "summary": "latency p99 of checkout is 4x its usual level",
        "involved": [{"signal": "latency", "labels": {"pod": "web-abc12"}, "observed": 0.9, "expected": 0.2,
                      "lower": 0.1, "upper": 0.3, "score": 7.5}],
    }]
    headers, body = slack.received[0]
    assert headers["Idempotency-Key"] == "inc-1/0/1" and headers["Content-Type"] == "application/json"
    assert set(body) == {"text", "blocks"}
    assert "latency p99 of checkout is 4x its usual level" in body["text"] and "shop/web" in body["text"]
    assert all(block["type"] == "section" for block in body["blocks"])
    assert "latency{instance" not in json.dumps(body)
    assert "`latency{pod=web-abc12} = 0.9 (expected 0.2)`" in body["blocks"][-1]["text"]["text"]


async def test_the_runner_may_name_another_phase(cluster, api, receiver):
    cluster.apply(deployment("web"))
    plain = receiver()
    secret(cluster, "hook", plain.url)

    await notify.send(notify_ctx(api, hook("hook")), phase=IncidentPhase.ESCALATED)

    assert plain.bodies[0]["phase"] == "Escalated"


async def test_a_503_is_retried_then_the_notification_succeeds(cluster, api, receiver):
    cluster.apply(deployment("web"))
    flaky = receiver([503])
    secret(cluster, "hook", flaky.url)

    done = await notify.send(notify_ctx(api, hook("hook")), backoff=0.01)

    assert done.outcome == Outcome.SUCCEEDED, done.message
    assert len(flaky.bodies) == 2 and flaky.bodies[0] == flaky.bodies[1]
    assert done.changes["webhooks"] == [{"secret": "hook/url", "status": 200, "tries": 2}]


async def test_three_failures_fail_with_the_status_and_never_show_the_url(cluster, api, receiver, caplog):
    cluster.apply(deployment("web"))
    down = receiver([503, 503, 503, 503])
    secret(cluster, "hook", down.url)
    caplog.set_level(logging.DEBUG)

    done = await notify.send(notify_ctx(api, hook("hook")), backoff=0.01)

    assert done.outcome == Outcome.FAILED
    assert "HTTP 503 after 3 tries" in done.message and "hook/url" in done.message
    assert len(down.bodies) == 3
    assert TOKEN not in done.message + json.dumps(done.changes) + caplog.text
    assert not [r for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]  # they log URLs and hosts


async def test_a_client_error_is_final_and_an_unreachable_hook_is_retried(cluster, api, receiver, caplog):
    cluster.apply(deployment("web"))
    refusing = receiver([404])
    secret(cluster, "gone", refusing.url)
    secret(cluster, "closed", f"http://127.0.0.1:{free_port()}/services/{TOKEN}")
    caplog.set_level(logging.DEBUG)

    done = await notify.send(notify_ctx(api, hook("gone"), hook("closed")), backoff=0.01)

    assert done.outcome == Outcome.FAILED
    assert len(refusing.bodies) == 1 and "HTTP 404 after 1 try" in done.message
    assert "ConnectError after 3 tries" in done.message
    assert TOKEN not in done.message + caplog.text


async def test_a_missing_secret_fails_and_the_spec_never_holds_the_url(cluster, api):
    cluster.apply(deployment("web"))
    secret(cluster, "not-a-url", "ftp://example.com/hook")

    missing = await notify.perform(notify_ctx(api, hook("nope")))
    wrong = await notify.perform(notify_ctx(api, hook("not-a-url")))

    assert missing.outcome == wrong.outcome == Outcome.FAILED
    assert "Secret or key not found" in missing.message
    assert "not an http(s) URL" in wrong.message and "ftp" not in wrong.message
    with pytest.raises(ValueError, match="url"):  # a URL cannot be written into the step itself
        notify_ctx(api, {"url": "https://hooks.example.com/x"})


async def test_notify_only_reads_the_workload_and_its_secret(cluster, api, receiver):
    cluster.apply(deployment("web"))
    plain = receiver()
    secret(cluster, "hook", plain.url)
    mark = len(cluster.requests)

    await notify.perform(notify_ctx(api, hook("hook")))

    assert [(r.method, r.path) for r in since(cluster, mark)] == [
        ("GET", "/apis/apps/v1/namespaces/shop/deployments/web"), ("GET", "/api/v1/namespaces/shop/secrets/hook")]


async def test_a_webhook_host_outside_the_allow_list_is_never_posted_to(cluster, api, receiver):
    cluster.apply(deployment("web"))
    allowed, forged = receiver(), receiver()
    secret(cluster, "ok", allowed.url)
    secret(cluster, "forged", forged.url.replace("127.0.0.1", "localhost"))  # the same kind of server, another name
    hosts = HostAllowList.of(prometheus_url="http://prometheus.monitoring:9090", patterns=["127.0.0.1"])

    done = await notify.send(dataclasses.replace(notify_ctx(api, hook("ok"), hook("forged")), allowed_hosts=hosts))

    assert done.outcome == Outcome.FAILED
    assert "webhook 1 (secret forged/url)" in done.message and "allow-list" in done.message
    assert "--allow-host" in done.message and TOKEN not in done.message
    assert len(allowed.bodies) == 1 and forged.bodies == []
