"""The object store: everything an API server does between decoding a request and etcd.

Thread-safe (one re-entrant lock), synchronous, and transport-free, so that HTTP handlers,
the in-process :class:`~homeostat.lab.kube.cluster.EmulatedCluster` API and the built-in
controllers all go through the same rules:

* metadata: uid, a global increasing resourceVersion, generation (bumped only when something
  other than metadata — and status, for resources with a status subresource — changes),
  creationTimestamp, generateName; no-op writes change nothing (no new resourceVersion, no event);
* status subresource: writes to the main resource keep the old status, writes to ``/status``
  keep everything but the status;
* optimistic concurrency: a stale ``metadata.resourceVersion`` is a 409 Conflict;
* admission: built-in defaulting/validation or CRD pruning/defaulting/validation (422);
* deletion: finalizers hold an object with a deletionTimestamp until they are gone; owners'
  deletion cascades to dependents (ownerReferences); namespaces delete their content;
* history: a bounded log of changes for watches from a resourceVersion (410 when compacted).

Stored dicts are never mutated once stored (each write stores a new dict), so the history and
watchers can share them without copying.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import dataclasses
import json
import random
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from homeostat.api.times import now_rfc3339
from homeostat.lab.kube import builtins, errors, schema
from homeostat.lab.kube.errors import FieldError
from homeostat.lab.kube.patching import apply_patch
from homeostat.lab.kube.registry import Registry, ResourceType
from homeostat.lab.kube.selectors import Matcher, selector_to_string

GroupResource = tuple[str, str]
ObjKey = tuple[str, str]  # (namespace or "", name)
Objects = list[dict[str, Any]]
Events = list[tuple[str, dict[str, Any]]]
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                  "deletionGracePeriodSeconds", "generation", "selfLink", "managedFields")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
CRD_GROUP_RESOURCE = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACES = ("", "namespaces")
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def clone(obj: Any) -> Any:
    """A deep copy of JSON data (faster than ``copy.deepcopy`` for plain dicts/lists)."""
    return json.loads(json.dumps(obj))


def get_path(obj: Any, path: str) -> Any:
    """Read a ``.a.b.c`` path (as used by CRD scale paths); None when absent."""
    current = obj
    for part in path.strip(".").split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return current


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    parts = path.strip(".").split(".")
    current = obj
    for part in parts[:-1]:
        current = current.setdefault(part, {})
    current[parts[-1]] = value


@dataclasses.dataclass(frozen=True)
class Change:
    """One entry of the history: what happened to which object at which resourceVersion."""

    rv: int
    group_resource: GroupResource
    namespace: str
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


class Watcher:
    """A subscription to changes of one resource, delivered into an asyncio queue of its loop."""

    def __init__(self, *, loop: asyncio.AbstractEventLoop, group_resource: GroupResource,
                 namespace: str | None, matcher: Matcher | None) -> None:
        self.loop = loop
        self.group_resource = group_resource
        self.namespace = namespace
        self.matcher = matcher
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue()
        self.closed = False

    def translate(self, change: Change) -> tuple[str, dict[str, Any]] | None:
        """The event this watcher sees for a change, given its namespace and selectors.

        As the watch cache does: an object that starts matching is ADDED, one that stops
        matching is DELETED for this watcher.
        """
        if change.group_resource != self.group_resource:
            return None
        if self.namespace is not None and change.namespace != self.namespace:
            return None
        if self.matcher is None:
            return change.type, change.obj
        now = self.matcher(change.obj)
        before = change.old is not None and self.matcher(change.old)
        if change.type == "MODIFIED":
            if now and before:
                return "MODIFIED", change.obj
            if now:
                return "ADDED", change.obj
            if before:
                return "DELETED", change.obj
            return None
        return (change.type, change.obj) if now else None

    def offer(self, item: tuple[str, dict[str, Any]] | None) -> bool:
        """Hand an event to the watcher's loop; False when that loop is gone."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:
            self.closed = True
            return False
        return True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.offer(None)


class Store:
    """In-memory objects of all resources, keyed by group/resource (shared by all versions)."""

    def __init__(self, registry: Registry, *, history: int = 10_000,
                 on_registry_change: Callable[[], None] | None = None) -> None:
        self.registry = registry
        self._lock = threading.RLock()
        self._objects: dict[GroupResource, dict[ObjKey, dict[str, Any]]] = collections.defaultdict(dict)
        self._rv = 0
        self._history: collections.deque[Change] = collections.deque()
        self._history_limit = history
        self._compacted = 0  # the newest resourceVersion that is no longer in the history
        self._watchers: set[Watcher] = set()
        self._on_registry_change = on_registry_change
        for name in DEFAULT_NAMESPACES:
            self.create(self.rt("v1", "namespaces"), None, {"metadata": {"name": name}})

    # --- helpers --------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def rt(self, api_version: str, kind_or_plural: str) -> ResourceType:
        rt = self.registry.find(api_version, kind_or_plural)
        if rt is None:
            raise errors.ApiError(404, "NotFound", f"the server doesn't have a resource type "
                                  f'"{kind_or_plural}" in "{api_version}"')
        return rt

    @staticmethod
    def render(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """A caller's own deep copy of a stored object, in the requested version."""
        result: dict[str, Any] = {"apiVersion": rt.api_version, "kind": rt.kind}
        result.update(clone(obj))
        result["apiVersion"], result["kind"] = rt.api_version, rt.kind
        return result

    def _key(self, rt: ResourceType, namespace: str | None, name: str) -> ObjKey:
        return ((namespace or "") if rt.namespaced else "", name)

    def _existing(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        obj = self._objects[rt.group_resource].get(self._key(rt, namespace, name))
        if obj is None:
            raise errors.not_found(group=rt.group, plural=rt.plural, name=name)
        return obj

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _record(self, change: Change) -> None:
        self._history.append(change)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().rv
        for watcher in list(self._watchers):
            if watcher.closed:
                self._watchers.discard(watcher)
                continue
            event = watcher.translate(change)
            if event is not None and not watcher.offer(event):
                self._watchers.discard(watcher)

    def _commit(self, rt: ResourceType, key: ObjKey, obj: dict[str, Any], kind: str,
                old: dict[str, Any] | None) -> dict[str, Any]:
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        if kind == "DELETED":
            self._objects[rt.group_resource].pop(key, None)
        else:
            self._objects[rt.group_resource][key] = obj
        self._record(Change(rv, rt.group_resource, key[0], kind, obj, old))
        return obj

    @staticmethod
    def _check_kind(rt: ResourceType, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise errors.bad_request("the body of the request must be a JSON object")
        if obj.get("kind") not in (None, "", rt.kind):
            raise errors.bad_request(f"the kind of the object ({obj.get('kind')}) does not match the kind "
                                     f"of the resource ({rt.kind})")
        group = obj.get("apiVersion", "").rpartition("/")[0] if obj.get("apiVersion") else rt.group
        if group != rt.group:
            raise errors.bad_request(f"the API version in the data ({obj.get('apiVersion')}) does not match "
                                     f"the expected API version ({rt.api_version})")
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise errors.bad_request("metadata must be an object")
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        return metadata

    def _admit(self, rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Defaulting and validation (built-in or CRD schema); raises 422 Invalid."""
        found: list[FieldError] = []
        if rt.custom:
            found += schema.process(obj, rt.schema)
        else:
            builtins.apply_defaults(rt, obj)
            found += builtins.validate(rt, obj)
        if rt.group_resource == CRD_GROUP_RESOURCE:
            found += self._validate_crd(obj)
        meta = obj["metadata"]
        if old is not None and old["metadata"].get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old["metadata"].get("finalizers") or [])
            if added:
                found.append(FieldError("FieldValueForbidden", "metadata.finalizers",
                                        f"Forbidden: no new finalizers can be added if the object is being "
                                        f"deleted, found new finalizers {sorted(added)}"))
        if found:
            raise errors.invalid(group=rt.group, kind=rt.kind, name=meta.get("name", ""), errors=found)

    @staticmethod
    def _validate_crd(obj: dict[str, Any]) -> list[FieldError]:
        spec = obj.get("spec") or {}
        names = spec.get("names") or {}
        if not spec.get("group") or not names.get("plural") or not names.get("kind") or not spec.get("versions"):
            return [FieldError("FieldValueRequired", "spec", "Required value: group, names.plural, names.kind "
                               "and versions are required")]
        expected = f"{names['plural']}.{spec['group']}"
        if obj["metadata"].get("name") != expected:
            return [FieldError("FieldValueInvalid", "metadata.name",
                               f'Invalid value: "{obj["metadata"].get("name")}": must be spec.names.plural+"."'
                               f"+spec.group")]
        return []

    def _ensure_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if not rt.namespaced:
            return
        if not namespace:
            raise errors.bad_request("the server could not find the requested resource: a namespace is required")
        ns = self._objects[NAMESPACES].get(("", namespace))
        if ns is None:
            raise errors.not_found(group="", plural="namespaces", name=namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(403, "Forbidden", f"{rt.qualified} is forbidden: unable to create new content "
                                  f"in namespace {namespace} because it is being terminated",
                                  details={"group": rt.group, "kind": rt.plural})

    # --- reads ----------------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self._lock:
            return self.render(rt, self._existing(rt, namespace, name))

    def list(self, rt: ResourceType, namespace: str | None, matcher: Matcher | None = None
             ) -> tuple[Objects, int]:
        """Matching objects (all namespaces when ``namespace`` is None), sorted, and the list's rv."""
        with self._lock:
            items = [obj for (ns, _), obj in sorted(self._objects[rt.group_resource].items())
                     if (namespace is None or ns == namespace) and (matcher is None or matcher(obj))]
            return [self.render(rt, obj) for obj in items], self._rv

    # --- writes ---------------------------------------------------------------------------------

    def create(self, rt: ResourceType, namespace: str | None, body: Any, *, dry_run: bool = False,
               privileged: bool = False) -> dict[str, Any]:
        """POST: create a new object; 409 AlreadyExists if the name is taken."""
        with self._lock:
            obj: dict[str, Any] = clone(body)
            meta = self._check_kind(rt, obj)
            if rt.namespaced:
                if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                    raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                             "sent on the request")
                namespace = namespace or meta.get("namespace")
                meta["namespace"] = namespace
            else:
                meta.pop("namespace", None)
                namespace = None
            self._ensure_namespace(rt, namespace)
            if not meta.get("name"):
                if not meta.get("generateName"):
                    raise errors.invalid(group=rt.group, kind=rt.kind, name="", errors=[FieldError(
                        "FieldValueRequired", "metadata.name", "Required value: name or generateName is required")])
                for _ in range(100):
                    name = meta["generateName"] + "".join(random.choices(_GENERATE_ALPHABET, k=5))
                    if self._key(rt, namespace, name) not in self._objects[rt.group_resource]:
                        break
                meta["name"] = name
            for field in _SERVER_FIELDS:
                meta.pop(field, None)
            if rt.status and not privileged:
                obj.pop("status", None)
            self._admit(rt, obj, None)
            key = self._key(rt, namespace, meta["name"])
            if key in self._objects[rt.group_resource]:
                raise errors.already_exists(group=rt.group, plural=rt.plural, name=meta["name"])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            meta["generation"] = 1
            if rt.group_resource == CRD_GROUP_RESOURCE:
                self._set_crd_status(obj)
            if dry_run:
                return self.render(rt, obj)
            self._commit(rt, key, obj, "ADDED", None)
            if rt.group_resource == CRD_GROUP_RESOURCE:
                self._register_crd(obj)
            return self.render(rt, obj)

    def replace(self, rt: ResourceType, namespace: str | None, name: str, body: Any, *,
                subresource: str | None = None, dry_run: bool = False, privileged: bool = False,
                check_rv: bool = True) -> dict[str, Any]:
        """PUT: replace an object (or its status); 409 Conflict on a stale resourceVersion."""
        with self._lock:
            old = self._existing(rt, namespace, name)
            new: dict[str, Any] = clone(body)
            meta = self._check_kind(rt, new)
            if meta.get("name") and meta["name"] != name:
                raise errors.bad_request(f"the name of the object ({meta['name']}) does not match the name on "
                                         f"the URL ({name})")
            if rt.namespaced and meta.get("namespace") and meta["namespace"] != old["metadata"]["namespace"]:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            rv = meta.get("resourceVersion")
            if check_rv and rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(group=rt.group, plural=rt.plural, name=name)
            return self._write(rt, old, new, subresource=subresource, dry_run=dry_run, privileged=privileged)

    def patch(self, rt: ResourceType, namespace: str | None, name: str, patch: Any, content_type: str, *,
              subresource: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """PATCH by content type; a resourceVersion in the patch is a precondition (409 if stale)."""
        with self._lock:
            old = self._existing(rt, namespace, name)
            patched = apply_patch(self.render(rt, old), patch, content_type, custom=rt.custom)
            meta = self._check_kind(rt, patched)
            if meta.get("resourceVersion") and meta["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise errors.conflict(group=rt.group, plural=rt.plural, name=name)
            return self._write(rt, old, patched, subresource=subresource, dry_run=dry_run)

    def _write(self, rt: ResourceType, old: dict[str, Any], new: dict[str, Any], *,
               subresource: str | None, dry_run: bool = False, privileged: bool = False) -> dict[str, Any]:
        if subresource == "status":
            status = new.get("status")
            new = clone(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif rt.status and not privileged:
            if "status" in old:
                new["status"] = clone(old["status"])
            else:
                new.pop("status", None)
        old_meta, meta = old["metadata"], new.setdefault("metadata", {})
        for field in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                      "generation", "name", "namespace", "resourceVersion"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta.pop("managedFields", None)
        if rt.group_resource == NAMESPACES:
            new.setdefault("spec", old.get("spec"))
        self._admit(rt, new, old)
        if rt.group_resource == CRD_GROUP_RESOURCE:
            self._set_crd_status(new)
        if new == old:
            return self.render(rt, old)  # a no-op write: no new resourceVersion, no event
        ignored = {"metadata", "status"} if rt.status else {"metadata"}
        if {k: v for k, v in new.items() if k not in ignored} != {k: v for k, v in old.items() if k not in ignored}:
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if dry_run:
            return self.render(rt, new)
        key = self._key(rt, old_meta.get("namespace"), old_meta["name"])
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            # The last finalizer is gone: the update becomes the deletion (one DELETED event).
            return self._remove(rt, key, new, propagation="Background")
        self._commit(rt, key, new, "MODIFIED", old)
        if rt.group_resource == CRD_GROUP_RESOURCE:
            self._register_crd(new)
        return self.render(rt, new)

    def delete(self, rt: ResourceType, namespace: str | None, name: str, *,
               options: dict[str, Any] | None = None, dry_run: bool = False) -> dict[str, Any]:
        """DELETE: mark with deletionTimestamp while finalizers remain, else remove (and cascade)."""
        options = options or {}
        with self._lock:
            old = self._existing(rt, namespace, name)
            preconditions = options.get("preconditions") or {}
            for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
                wanted = preconditions.get(field)
                if wanted and wanted != old["metadata"].get(field):
                    raise errors.conflict(group=rt.group, plural=rt.plural, name=name, why=(
                        f"Precondition failed: {label} in precondition: {wanted}, "
                        f"{label} in object meta: {old['metadata'].get(field)}"))
            if dry_run:
                return self.render(rt, old)
            propagation = options.get("propagationPolicy") or "Background"
            key = self._key(rt, namespace, name)
            if rt.group_resource == NAMESPACES:
                return self._delete_namespace(rt, key, old)
            if old["metadata"].get("finalizers"):
                if old["metadata"].get("deletionTimestamp"):
                    return self.render(rt, old)
                new = clone(old)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                new["metadata"]["generation"] = int(old["metadata"].get("generation", 1)) + 1
                self._commit(rt, key, new, "MODIFIED", old)
                return self.render(rt, new)
            return self._remove(rt, key, old, propagation=propagation)

    def delete_collection(self, rt: ResourceType, namespace: str | None, matcher: Matcher | None,
                          *, options: dict[str, Any] | None = None) -> Objects:
        with self._lock:
            items, _ = self.list(rt, namespace, matcher)
            return [self.delete(rt, item["metadata"].get("namespace"), item["metadata"]["name"], options=options)
                    for item in items]

    def _remove(self, rt: ResourceType, key: ObjKey, obj: dict[str, Any], *, propagation: str) -> dict[str, Any]:
        gone = clone(obj)
        self._commit(rt, key, gone, "DELETED", obj)
        uid = obj["metadata"].get("uid")
        self._collect_garbage(uid, orphan=propagation == "Orphan")
        if rt.group_resource == CRD_GROUP_RESOURCE:
            self._unregister_crd(obj)
        namespace = key[0]
        if namespace:
            ns = self._objects[NAMESPACES].get(("", namespace))
            if ns is not None and ns["metadata"].get("deletionTimestamp"):
                self._finish_namespace(namespace)
        return self.render(rt, gone)

    def _dependents(self, uid: str | None) -> Iterable[tuple[ResourceType, dict[str, Any]]]:
        if not uid:
            return []
        found = []
        for rt in self.registry:
            if rt.custom and rt.version != rt.storage_version:
                continue
            for obj in list(self._objects[rt.group_resource].values()):
                refs = obj["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == uid for ref in refs):
                    found.append((rt, obj))
        unique = {(rt.group_resource, o["metadata"].get("namespace"), o["metadata"]["name"]): (rt, o)
                  for rt, o in found}
        return list(unique.values())

    def _collect_garbage(self, uid: str | None, *, orphan: bool) -> None:
        """Delete (or orphan) the dependents of a removed owner, as the garbage collector would."""
        for rt, obj in self._dependents(uid):
            meta = obj["metadata"]
            if not self._objects[rt.group_resource].get(self._key(rt, meta.get("namespace"), meta["name"])):
                continue
            if orphan:
                new = clone(obj)
                new["metadata"]["ownerReferences"] = [r for r in meta["ownerReferences"] if r.get("uid") != uid]
                if not new["metadata"]["ownerReferences"]:
                    del new["metadata"]["ownerReferences"]
                self._write(rt, obj, new, subresource=None, privileged=True)
            else:
                self.delete(rt, meta.get("namespace"), meta["name"])

    def _delete_namespace(self, rt: ResourceType, key: ObjKey, old: dict[str, Any]) -> dict[str, Any]:
        if not old["metadata"].get("deletionTimestamp"):
            new = clone(old)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["status"] = {"phase": "Terminating"}
            self._commit(rt, key, new, "MODIFIED", old)
        name = key[1]
        for other in self.registry:
            if not other.namespaced or (other.custom and other.version != other.storage_version):
                continue
            for (ns, obj_name) in list(self._objects[other.group_resource]):
                if ns == name and (ns, obj_name) in self._objects[other.group_resource]:
                    self.delete(other, ns, obj_name)
        result = self._finish_namespace(name)
        return result if result is not None else self.get(rt, None, name)

    def _finish_namespace(self, name: str) -> dict[str, Any] | None:
        """Remove a terminating namespace once nothing is left in it."""
        for objs in self._objects.values():
            if any(ns == name for ns, _ in objs):
                return None
        rt = self.rt("v1", "namespaces")
        ns_obj = self._objects[NAMESPACES].get(("", name))
        if ns_obj is None:
            return None
        return self._remove(rt, ("", name), ns_obj, propagation="Background")

    # --- CRDs -----------------------------------------------------------------------------------

    @staticmethod
    def _set_crd_status(crd: dict[str, Any]) -> None:
        names = (crd.get("spec") or {}).get("names") or {}
        stamp = now_rfc3339()
        crd["status"] = {
            "acceptedNames": copy.deepcopy(names),
            "storedVersions": [v["name"] for v in (crd.get("spec") or {}).get("versions") or [] if v.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                 "message": "no conflicts found", "lastTransitionTime": stamp},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted", "lastTransitionTime": stamp},
            ],
        }

    def _register_crd(self, crd: dict[str, Any]) -> None:
        self.registry.add_crd(crd)
        if self._on_registry_change is not None:
            self._on_registry_change()

    def _unregister_crd(self, crd: dict[str, Any]) -> None:
        types = self.registry.remove_crd(crd["metadata"]["name"])
        for rt in types[:1]:
            for key, obj in list(self._objects[rt.group_resource].items()):
                self._commit(rt, key, clone(obj), "DELETED", obj)
        if self._on_registry_change is not None:
            self._on_registry_change()

    # --- scale subresource ----------------------------------------------------------------------

    def get_scale(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        with self._lock:
            return self._scale_of(rt, self._existing(rt, namespace, name))

    def _scale_of(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        assert rt.scale is not None
        meta = obj["metadata"]
        if rt.custom:
            selector = get_path(obj, rt.scale.label_selector) if rt.scale.label_selector else None
        else:
            selector = selector_to_string((obj.get("spec") or {}).get("selector"))
        status: dict[str, Any] = {"replicas": get_path(obj, rt.scale.status_replicas) or 0}
        if selector:
            status["selector"] = selector
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": get_path(obj, rt.scale.spec_replicas) or 0},
            "status": status,
        }

    def write_scale(self, rt: ResourceType, namespace: str | None, name: str, *, body: Any = None,
                    patch: Any = None, content_type: str = "") -> dict[str, Any]:
        """PUT or PATCH of ``/scale``: changes only the replicas at the resource's spec path."""
        assert rt.scale is not None
        with self._lock:
            old = self._existing(rt, namespace, name)
            scale = self._scale_of(rt, old)
            if patch is not None:
                scale = apply_patch(scale, patch, content_type, custom=False)
            elif isinstance(body, dict):
                scale = body
            rv = (scale.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(group=rt.group, plural=rt.plural, name=name)
            replicas = (scale.get("spec") or {}).get("replicas")
            if not isinstance(replicas, int) or replicas < 0:
                raise errors.invalid(group="autoscaling", kind="Scale", name=name, errors=[FieldError(
                    "FieldValueInvalid", "spec.replicas",
                    f"Invalid value: {errors.format_value(replicas)}: must be greater than or equal to 0")])
            new = clone(old)
            set_path(new, rt.scale.spec_replicas, replicas)
            self._write(rt, old, new, subresource=None)
            return self._scale_of(rt, self._existing(rt, namespace, name))

    # --- in-process API -------------------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create or replace unconditionally; status is written too (a privileged, controller-like write)."""
        rt = self.rt(obj.get("apiVersion", ""), obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        with self._lock:
            key = self._key(rt, meta.get("namespace"), meta.get("name", ""))
            if meta.get("name") and key in self._objects[rt.group_resource]:
                return self.replace(rt, meta.get("namespace"), meta["name"], obj, privileged=True, check_rv=False)
            return self.create(rt, meta.get("namespace"), obj, privileged=True)

    # --- watching -------------------------------------------------------------------------------

    def watch(self, rt: ResourceType, namespace: str | None, matcher: Matcher | None, since: int | None, *,
              loop: asyncio.AbstractEventLoop) -> tuple[Watcher, Events]:
        """Subscribe; return the watcher and the events it must send first.

        Without a resourceVersion (or with "0"), the current objects come first as ADDED;
        with one, the changes after it are replayed from history (410 Gone if compacted).
        """
        with self._lock:
            watcher = Watcher(loop=loop, group_resource=rt.group_resource, namespace=namespace, matcher=matcher)
            initial: Events = []
            if since is None:
                for (ns, _), obj in sorted(self._objects[rt.group_resource].items()):
                    if (namespace is None or ns == namespace) and (matcher is None or matcher(obj)):
                        initial.append(("ADDED", obj))
            else:
                if since < self._compacted:
                    raise errors.gone(f"too old resource version: {since} ({self._compacted + 1})")
                for change in self._history:
                    if change.rv > since and (event := watcher.translate(change)) is not None:
                        initial.append(event)
            self._watchers.add(watcher)
            return watcher, initial

    def bookmark(self, watcher: Watcher) -> None:
        """Queue a BOOKMARK in order with the events (so its resourceVersion never runs ahead)."""
        with self._lock:
            watcher.offer(("BOOKMARK", {"metadata": {"resourceVersion": str(self._rv)}}))

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            self._watchers.discard(watcher)
            watcher.closed = True

    def close_watchers(self) -> None:
        with self._lock:
            for watcher in list(self._watchers):
                watcher.close()
            self._watchers.clear()
