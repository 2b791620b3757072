"""The Kopf face of the operator: thin handlers over `loop.run_policy`.

One daemon per AnomalyPolicy runs its monitor; an update handler wakes it when the spec
changes so the new spec takes effect at once; Kopf cancels the daemon when the policy is
deleted. This is the only module that knows Kopf's decorators.

With sharding, the daemon of another shard's policy only waits to be stopped: Kopf still
watches every policy, but only its own shard's are monitored. The idle daemon is on purpose.
Every instance shares Kopf's one finalizer name, and Kopf removes that finalizer from an object
for which it has no running daemon (a `when=` filter excluding it, or a daemon that returned),
so with a filter the other shards would remove the finalizer that the owner's Kopf adds, forever.
Leader election is not Kopf's business either: every replica runs the daemons, which wait in
`run_policy` until they lead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from typing import Any

import kopf

from homeostat.api.base import GROUP, VERSION
from homeostat.operator.loop import Dependencies, PolicyRef, run_policy
from homeostat.operator.prometheus import POOL_SIZE
from homeostat.operator.sharding import Shard

PLURAL = "anomalypolicies"


def register_handlers(
    *, registry: kopf.OperatorRegistry, deps: Dependencies, in_cluster: bool, shard: Shard | None = None
) -> None:
    """Register the policy handlers on `registry`, closing over explicit dependencies."""
    shard = shard or Shard()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # An explicit registry has none of Kopf's default login handlers: say which one applies.
        if in_cluster:
            return kopf.login_with_service_account(**kwargs)
        return kopf.login_with_kubeconfig(**kwargs)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        # Keep Kopf's bookkeeping in annotations: our status has a strict schema that would
        # prune Kopf's own `status.kopf` fields on a real API server.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
        settings.posting.level = logging.WARNING  # only warnings of handlers become Events
        settings.watching.server_timeout = 300
        settings.networking.request_timeout = 60
        # Blocking calls (Prometheus queries, the kubernetes client) run in worker threads; the
        # default pool has cpu+4 threads, which slow queries fill and every policy then waits.
        asyncio.get_running_loop().set_default_executor(
            concurrent.futures.ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="homeostat-io")
        )

    @kopf.on.update(GROUP, VERSION, PLURAL, field="spec", registry=registry)
    def spec_changed(memo: kopf.Memo, **_: Any) -> None:
        wakeup = memo.get("wakeup")
        if isinstance(wakeup, asyncio.Event):
            wakeup.set()

    @kopf.daemon(GROUP, VERSION, PLURAL, registry=registry, cancellation_timeout=10.0, cancellation_backoff=0)
    async def monitor_policy(
        name: str, namespace: str | None, body: kopf.Body, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        assert namespace is not None, "AnomalyPolicy is a namespaced resource"
        if not shard.owns(namespace=namespace, name=name):
            # Another shard's policy, for good (its shard depends only on its namespace and name).
            # Idle rather than returning, which would make Kopf remove the shared finalizer.
            await stopped.wait()
            return
        wakeup = asyncio.Event()
        memo["wakeup"] = wakeup

        def read_spec() -> tuple[dict[str, Any] | None, int | None]:
            spec = body.get("spec")  # Kopf keeps a daemon's body live: this is the newest spec
            return (dict(spec) if spec is not None else None), body.get("metadata", {}).get("generation")

        async def wait_for_change(timeout: float | None) -> bool:
            try:
                await asyncio.wait_for(wakeup.wait(), timeout)
            except TimeoutError:
                return False
            wakeup.clear()
            return True

        def emit(*, type: str, reason: str, message: str) -> None:
            kopf.event(body, type=type, reason=reason, message=message[:1024])

        await run_policy(
            ref=PolicyRef(namespace=namespace, name=name, uid=body.get("metadata", {}).get("uid")),
            read_spec=read_spec, wait_for_change=wait_for_change, deps=deps, emit=emit,
        )
