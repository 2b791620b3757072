"""Placeholder: workload controllers land in phase 2."""

from __future__ import annotations

from homeostat.lab.kube.store import Store


class Controllers:
    def __init__(self, store: Store, *, pod_ready_delay: float) -> None:
        self.store = store
        self.pod_ready_delay = pod_ready_delay

    def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass
