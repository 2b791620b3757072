"""``EmulatedCluster``: the emulated API server in a background thread, with a kubeconfig.

Clients talk to it over real HTTP on 127.0.0.1; tests and the lab also read and write objects
in-process (``apply``/``get``/``list``/``delete``), through the same store and rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import tempfile
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Self

import aiohttp.web

from homeostat.lab.kube.registry import Registry
from homeostat.lab.kube.server import ApiHandler, RecordedRequest
from homeostat.lab.kube.store import Objects, Store

CONTEXT = "homeostat-lab"


class EmulatedCluster:
    """A Kubernetes API server emulated in-process (see :mod:`homeostat.lab.kube` for its limits)."""

    def __init__(
        self,
        crds: Iterable[dict[str, Any]] = (),
        *,
        controllers: bool = True,
        pod_ready_delay: float = 1.0,
        port: int = 0,
        host: str = "127.0.0.1",
        watch_history: int = 10_000,
        bookmark_interval: float = 10.0,
    ) -> None:
        self._host = host
        self._port = port
        self._controllers_enabled = controllers
        self.pod_ready_delay = pod_ready_delay
        self.registry = Registry()
        self.store = Store(self.registry, history=watch_history, on_registry_change=self._registry_changed)
        self.handler = ApiHandler(store=self.store, bookmark_interval=bookmark_interval)
        for crd in crds:
            self.store.apply(crd)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._url: str | None = None
        self._kubeconfig: pathlib.Path | None = None
        self._controllers: Any = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            return self
        self._thread = threading.Thread(target=self._run, name="homeostat-lab-kube", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError("the emulated API server failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout=10)
        self._thread = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as e:  # report start-up failures to start()
            self._startup_error = e
        finally:
            self._started.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = aiohttp.web.Server(self.handler, handler_cancellation=True)
        runner = aiohttp.web.ServerRunner(server, shutdown_timeout=1.0)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, self._host, self._port)
        await site.start()
        port = runner.addresses[0][1]
        self._url = f"http://{self._host}:{port}"
        self.handler.server_address = f"{self._host}:{port}"
        self._write_kubeconfig()
        async with self.handler:
            if self._controllers_enabled:
                from homeostat.lab.kube.controllers import Controllers

                self._controllers = Controllers(self.store, pod_ready_delay=self.pod_ready_delay)
                self._controllers.start()
            self._started.set()
            try:
                await self._stopping.wait()
            finally:
                if self._controllers is not None:
                    await self._controllers.stop()
                self.store.close_watchers()
                await runner.cleanup()

    def _write_kubeconfig(self) -> None:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="homeostat-lab-kube-")
        path = pathlib.Path(self._tmpdir.name) / "kubeconfig"
        path.write_text(
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            f"- name: {CONTEXT}\n"
            "  cluster:\n"
            f"    server: {self._url}\n"
            "users:\n"
            f"- name: {CONTEXT}\n"
            "  user: {}\n"
            "contexts:\n"
            f"- name: {CONTEXT}\n"
            "  context:\n"
            f"    cluster: {CONTEXT}\n"
            f"    user: {CONTEXT}\n"
            "    namespace: default\n"
            f"current-context: {CONTEXT}\n"
        )
        self._kubeconfig = path

    def _registry_changed(self) -> None:
        self.handler.sync_resources() if hasattr(self, "handler") else None

    # --- addresses ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the emulated cluster is not started")
        return self._url

    @property
    def kubeconfig_path(self) -> pathlib.Path:
        if self._kubeconfig is None:
            raise RuntimeError("the emulated cluster is not started")
        return self._kubeconfig

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every HTTP request made by clients so far (a copy), in arrival order."""
        return list(self.handler.log)

    # --- in-process API -------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace (status included); validated, defaulted, versioned, watched."""
        return self.store.apply(obj)

    def get(self, api_version: str, kind_or_plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        rt = self.store.rt(api_version, kind_or_plural)
        try:
            return self.store.get(rt, namespace, name)
        except Exception as e:
            if getattr(e, "code", None) == 404:
                return None
            raise

    def list(self, api_version: str, kind_or_plural: str, namespace: str | None = None) -> Objects:
        items, _ = self.store.list(self.store.rt(api_version, kind_or_plural), namespace)
        return items

    def delete(self, api_version: str, kind_or_plural: str, namespace: str | None, name: str) -> None:
        """Delete like ``kubectl delete`` (finalizers respected); missing objects are ignored."""
        rt = self.store.rt(api_version, kind_or_plural)
        try:
            self.store.delete(rt, namespace, name)
        except Exception as e:
            if getattr(e, "code", None) != 404:
                raise

    def events(self, namespace: str | None = None) -> Objects:
        """core/v1 and events.k8s.io/v1 Events, oldest first."""
        found = self.list("v1", "events", namespace) + self.list("events.k8s.io/v1", "events", namespace)
        return sorted(found, key=lambda e: int(e["metadata"]["resourceVersion"]))
