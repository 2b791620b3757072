"""The HTTP face of the emulator: a KMock ``KubernetesEmulator`` whose routing we take over.

KMock gives us the aiohttp plumbing (``RawHandler.__call__``: request parsing, its request log,
the DSL of reactions) and the discovery registry (``kmock.ResourcesArray``). Its own object
handling (``KubernetesEmulator._handle`` and the fallback reactions) cannot be fixed by
subclassing its pieces — URL parsing, merge semantics, status codes and watches are all in one
method — so :meth:`ApiHandler._handle` replaces it and serves every Kubernetes path from the
:class:`~homeostat.lab.kube.store.Store`.

KMock's DSL still works on top for fault injection: a reaction registered on the handler
(``cluster.handler['patch', kmock.resource('apps/v1/deployments')] << 500``) answers first;
requests that no reaction matches are served by the emulator.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import math
from typing import Any

import aiohttp.web
import attrs
import kmock

from homeostat.lab.kube import discovery, errors, tables
from homeostat.lab.kube.patching import APPLY_PATCH
from homeostat.lab.kube.registry import ResourceType
from homeostat.lab.kube.selectors import matcher as make_matcher
from homeostat.lab.kube.store import Store

logger = logging.getLogger(__name__)

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-homeostat-lab",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.0",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclasses.dataclass
class RecordedRequest:
    """One HTTP request a client made, with the status it got (``cluster.requests``)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str | None
    body: Any
    status: int | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def user_agent(self) -> str | None:
        """The client's ``User-Agent`` header (``kopf/1.45.2``, ``kubectl/v1.32...``), if it sent one."""
        return next((value for key, value in self.headers.items() if key.lower() == "user-agent"), None)

    @property
    def verb(self) -> str:
        """The RBAC verb of the request (``get``, ``list``, ``watch``, ``create``, ``patch``...)."""
        if self.method == "GET":
            if self.query.get("watch") in ("true", "1"):
                return "watch"
            return "get" if _has_name(self.path) else "list"
        return {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if _has_name(self.path) else "deletecollection"}.get(self.method, self.method)


def _has_name(path: str) -> bool:
    parts = [p for p in path.split("/") if p]
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    return len(rest) >= 2


@dataclasses.dataclass
class Target:
    """A parsed resource URL."""

    rt: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def _json(payload: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(text=json.dumps(payload), status=status, content_type="application/json")


@attrs.define(kw_only=True)
class ApiHandler(kmock.KubernetesEmulator):
    """The KMock handler that serves the Kubernetes API from a :class:`Store`."""

    store: Store
    server_address: str = "127.0.0.1:0"
    bookmark_interval: float = 10.0
    log: list[RecordedRequest] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        # Deliberately NOT calling KMock's post-init: it registers KMock's own fallback reactions
        # (its object handling), which this handler replaces. The DSL itself stays usable.
        self.sync_resources()

    def sync_resources(self) -> None:
        """Mirror the registry into KMock's discovery registry (``handler.resources``)."""
        wanted = {kmock.resource(rt.group, rt.version, rt.plural): rt for rt in self.store.registry}
        for key in list(self.resources):
            if key not in wanted:
                del self.resources[key]
        for key, rt in wanted.items():
            self.resources[key] = kmock.ResourceInfo(
                namespaced=rt.namespaced, kind=rt.kind, singular=rt.singular, verbs=set(rt.verbs),
                shortnames=set(rt.short_names), categories=set(rt.categories), subresources=set(rt.subresources()))

    # --- entry point ----------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """KMock's entry point, minus its URL parser's crash on ``/api/v1/namespaces``."""
        body = await raw_request.read()
        try:
            request = await kmock.Request._parse(raw_request, id=len(self._requests))
        except ValueError:  # kmock.parsing.parse_path() cannot parse some valid URLs
            request = kmock.Request(
                id=len(self._requests), raw_request=raw_request, url=raw_request.url,
                method=raw_request.method, params=dict(raw_request.query), headers=dict(raw_request.headers),
                cookies=dict(raw_request.cookies), body=body, text=body.decode(errors="replace"),
                data=_parse_body(body),
            )
        self._requests.append(request)
        return await self._handle(request)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        record = RecordedRequest(
            method=str(request.method.value if hasattr(request.method, "value") else request.method).upper(),
            path=request.url.path,
            query=dict(request.params),
            content_type=request.headers.get("Content-Type"),
            body=_parse_body(request.body),
            headers=dict(request.headers),
        )
        self.log.append(record)
        response: aiohttp.web.StreamResponse
        try:
            response = await self._dispatch(request, record)
        except errors.ApiError as e:
            response = _json(e.status(), status=e.code)
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception as e:  # an emulator bug: answer like a server would, and say it in the log
            logger.exception("Emulated API server failed on %s %s", record.method, record.path)
            response = _json(errors.ApiError(500, "InternalError", f"emulator error: {e!r}").status(), status=500)
        if record.status is None:
            record.status = response.status
        assert raw is not None
        return response

    async def _dispatch(self, request: kmock.Request, record: RecordedRequest) -> aiohttp.web.StreamResponse:
        if self._payloads:  # user reactions of KMock's DSL (fault injection) go first
            try:
                response: aiohttp.web.StreamResponse = await kmock.RawHandler._handle(self, request)
                return response
            except NotImplementedError:
                pass
        return await self._emulate(request, record)

    async def emulate(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        """Serve `request` as the emulator does, past any reaction: for a reaction that lets a write
        land and then answers something else (late, a 504, a dropped connection). Errors the
        emulator would answer are raised (`errors.ApiError`); the request is not logged twice."""
        method = str(request.method.value if hasattr(request.method, "value") else request.method).upper()
        record = RecordedRequest(method=method, path=request.url.path, query=dict(request.params),
                                 content_type=request.headers.get("Content-Type"), body=_parse_body(request.body),
                                 headers=dict(request.headers))
        return await self._emulate(request, record)

    async def _emulate(self, request: kmock.Request, record: RecordedRequest) -> aiohttp.web.StreamResponse:
        parts = [p for p in request.url.path.split("/") if p]
        if not parts or parts[0] not in ("api", "apis"):
            return self._serve_non_api(request.url.path)
        if parts[0] == "api":
            if len(parts) == 1:
                return _json(discovery.api_versions(self.server_address))
            group, version, rest = "", parts[1], parts[2:]
        else:
            if len(parts) == 1:
                return _json(discovery.api_group_list(self.store.registry))
            if len(parts) == 2:
                doc = discovery.api_group(self.store.registry, parts[1])
                if doc is None:
                    raise errors.resource_not_found(request.url.path)
                return _json(doc)
            group, version, rest = parts[1], parts[2], parts[3:]
        if not rest:
            doc = discovery.resource_list(self.store.registry, group, version)
            if doc is None:
                raise errors.resource_not_found(request.url.path)
            return _json(doc)
        target = self._target(group, version, rest, request.url.path)
        return await self._serve_resource(request, target, record)

    def _target(self, group: str, version: str, rest: list[str], path: str) -> Target:
        namespace = None
        registry = self.store.registry
        if rest[0] == "namespaces" and len(rest) >= 3 and registry.has_namespaced(group, version, rest[2]):
            namespace, rest = rest[1], rest[2:]
        rt = registry.get(group, version, rest[0])
        if rt is None or (namespace is not None and not rt.namespaced) or len(rest) > 3:
            raise errors.resource_not_found(path)
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and subresource not in rt.subresources():
            raise errors.resource_not_found(path)
        return Target(rt, namespace, name, subresource)

    def _serve_non_api(self, path: str) -> aiohttp.web.StreamResponse:
        if path == "/version":
            return _json(SERVER_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return aiohttp.web.Response(text="ok")
        if path == "/":
            paths = {"/api", "/api/v1", "/apis", "/version", "/healthz", "/livez", "/readyz"}
            for rt in self.store.registry:
                if rt.group:
                    paths |= {f"/apis/{rt.group}", f"/apis/{rt.group}/{rt.version}"}
            return _json({"paths": sorted(paths)})
        raise errors.resource_not_found(path)  # incl. /openapi/v2 and /openapi/v3: clients fall back

    # --- resources ------------------------------------------------------------------------------

    async def _serve_resource(self, request: kmock.Request, target: Target,
                              record: RecordedRequest) -> aiohttp.web.StreamResponse:
        rt, params, store = target.rt, request.params, self.store
        method = record.method
        media = (record.content_type or "").split(";")[0].strip()
        if method in ("POST", "PUT") and media and media != "application/json":
            raise errors.ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown "
                                  f"format ({media}): the emulated API server accepts only application/json")
        dry_run = params.get("dryRun") == "All"
        accept = request.headers.get("Accept", "")
        verb = record.verb
        if verb not in rt.verbs and target.subresource is None:
            raise errors.method_not_allowed()
        namespace = target.namespace
        if method == "GET" and params.get("watch") in ("true", "1"):
            fields = params.get("fieldSelector")
            if target.name is not None:
                fields = ",".join(filter(None, [fields, f"metadata.name={target.name}"]))
            matcher = make_matcher(labels=params.get("labelSelector"), fields=fields, group=rt.group,
                                   plural=rt.plural)
            return await self._stream_watch(request, target, matcher, record)
        if target.name is None:
            matcher = make_matcher(labels=params.get("labelSelector"), fields=params.get("fieldSelector"),
                                   group=rt.group, plural=rt.plural)
            if method == "GET":
                items, rv = store.list(rt, namespace, matcher)
                listing = self._paginate(rt, items, rv, params)
                if "as=Table" in accept:
                    return _json(tables.table(rt, listing["items"], list_meta=listing["metadata"],
                                              params=params))
                return _json(listing)
            if method == "POST":
                created = store.create(rt, namespace, request.data, dry_run=dry_run)
                return _json(created, status=201)
            if method == "DELETE":
                deleted = store.delete_collection(rt, namespace, matcher, options=_delete_options(request))
                _, rv = store.list(rt, namespace, lambda _: False)
                return _json({"kind": f"{rt.kind}List", "apiVersion": rt.api_version,
                              "metadata": {"resourceVersion": str(rv)}, "items": deleted})
            raise errors.method_not_allowed()
        name = target.name
        if target.subresource == "scale":
            if method == "GET":
                return _json(store.get_scale(rt, namespace, name))
            if method == "PUT":
                return _json(store.write_scale(rt, namespace, name, body=request.data))
            if method == "PATCH":
                return _json(store.write_scale(rt, namespace, name, patch=request.data,
                                               content_type=record.content_type or ""))
            raise errors.method_not_allowed()
        if method == "GET":
            obj = store.get(rt, namespace, name)
            if "as=Table" in accept and target.subresource is None:
                return _json(tables.table(rt, [obj], list_meta={"resourceVersion": obj["metadata"].get(
                    "resourceVersion", "")}, params=params))
            return _json(obj)
        if method == "PUT":
            return _json(store.replace(rt, namespace, name, request.data, subresource=target.subresource,
                                       dry_run=dry_run))
        if method == "PATCH":
            if (record.content_type or "").split(";")[0].strip() == APPLY_PATCH:
                raise errors.ApiError(415, "UnsupportedMediaType", "server-side apply "
                                      "(application/apply-patch+yaml) is not supported by the emulated API server")
            if request.data is None:
                raise errors.bad_request("the body of the request was in an unknown format")
            return _json(store.patch(rt, namespace, name, request.data, record.content_type or "",
                                     subresource=target.subresource, dry_run=dry_run))
        if method == "DELETE" and target.subresource is None:
            return _json(store.delete(rt, namespace, name, options=_delete_options(request), dry_run=dry_run))
        raise errors.method_not_allowed()

    @staticmethod
    def _paginate(rt: ResourceType, items: list[dict[str, Any]], rv: int, params: Any) -> dict[str, Any]:
        """``limit``/``continue``: the token holds the list's resourceVersion and an offset."""
        meta: dict[str, Any] = {"resourceVersion": str(rv)}
        start = 0
        if params.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(params["continue"].encode()))
                start, rv = int(token["start"]), int(token["rv"])
                meta["resourceVersion"] = str(rv)
            except (ValueError, KeyError, TypeError) as e:
                raise errors.bad_request(f"continue key is not valid: {e}") from e
        limit = int(params.get("limit") or 0)
        if limit > 0 and start + limit < len(items):
            token_text = json.dumps({"rv": rv, "start": start + limit})
            meta["continue"] = base64.urlsafe_b64encode(token_text.encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
            items = items[start:start + limit]
        else:
            items = items[start:]
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": meta, "items": items}

    async def _stream_watch(self, request: kmock.Request, target: Target, matcher: Any,
                           record: RecordedRequest) -> aiohttp.web.StreamResponse:
        rt, params = target.rt, request.params
        rv_text = params.get("resourceVersion") or ""
        try:
            since = None if rv_text in ("", "0") else int(rv_text)
            timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else math.inf
        except ValueError as e:
            raise errors.bad_request(f"invalid watch parameter: {e}") from e
        bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
        loop = asyncio.get_running_loop()
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        raw = request._raw_request
        assert raw is not None
        try:
            watcher, initial = self.store.watch(rt, target.namespace, matcher, since, loop=loop)
        except errors.ApiError as e:  # e.g. 410: a 200 stream with one ERROR event, like the watch cache
            record.status = 200
            await response.prepare(raw)
            await response.write(json.dumps({"type": "ERROR", "object": e.status()}).encode() + b"\n")
            await response.write_eof()
            return response
        record.status = 200

        def line(kind: str, obj: dict[str, Any]) -> bytes:
            if kind == "BOOKMARK":
                obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": obj["metadata"]}
            else:
                obj = {**obj, "apiVersion": rt.api_version, "kind": rt.kind}
            return json.dumps({"type": kind, "object": obj}).encode() + b"\n"

        try:
            await response.prepare(raw)
            for kind, obj in initial:
                await response.write(line(kind, obj))
            deadline = loop.time() + timeout
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                wait = min(remaining, self.bookmark_interval if bookmarks else remaining)
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), timeout=None if math.isinf(wait) else wait)
                except TimeoutError:
                    if bookmarks and deadline - loop.time() > 0:
                        self.store.bookmark(watcher)
                    continue
                if item is None:
                    break
                await response.write(line(*item))
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client went away
        finally:
            self.store.unwatch(watcher)
        return response


def _parse_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _delete_options(request: kmock.Request) -> dict[str, Any]:
    options: dict[str, Any] = dict(request.data) if isinstance(request.data, dict) else {}
    if request.params.get("propagationPolicy"):
        options["propagationPolicy"] = request.params["propagationPolicy"]
    return options
