"""A tiny Kopf operator runs against the emulator: it sees a CR created and patches its status."""

from __future__ import annotations

import time

import kopf
import pytest
from kopf.testing import KopfRunner

from homeostat.lab.kube import EmulatedCluster

from .conftest import widget


def _wait(predicate, timeout: float = 30.0):  # Kopf starts slowly on a loaded machine
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.mark.parametrize("scope", ["--namespace=default", "--all-namespaces"])
def test_kopf_operator_reacts_and_patches_status(cluster: EmulatedCluster, monkeypatch, scope):
    monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig_path))
    registry = kopf.OperatorRegistry()

    @kopf.on.create("lab.homeostat.io", "v1", "widgets", id="created", registry=registry)
    def created(spec, **_):
        return {"seen": spec["target"]}

    @kopf.on.login(registry=registry)
    def login(**kwargs):
        return kopf.login_with_kubeconfig(**kwargs)  # reads $KUBECONFIG at call time

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_):
        settings.posting.enabled = True
        settings.watching.server_timeout = 5

    with KopfRunner(["run", "--standalone", scope, "--verbose"], registry=registry,
                    timeout=60) as runner:
        time.sleep(1.0)
        cluster.apply(widget("w1", interval="1m"))
        obj = _wait(lambda: (o := cluster.get("lab.homeostat.io/v1", "Widget", "default", "w1"))
                    and (o.get("status") or {}).get("created") and o)
        assert obj["status"]["created"] == {"seen": "api"}
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None

    widget_requests = [r for r in cluster.requests if "/widgets" in r.path]
    status_patches = [r for r in widget_requests if r.method == "PATCH" and r.path.endswith("/status")]
    assert status_patches and all(r.status == 200 for r in status_patches)
    assert {r.verb for r in widget_requests} >= {"list", "watch", "patch"}
    assert not [r for r in cluster.requests if r.status is not None and r.status >= 500]
