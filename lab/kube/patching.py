"""PATCH bodies by content type: JSON merge patch, JSON patch and strategic merge patch.

* ``application/merge-patch+json`` — RFC 7386: objects merge, ``null`` deletes, anything else
  (lists included) replaces.
* ``application/json-patch+json`` — RFC 6902: add/remove/replace/move/copy/test.
* ``application/strategic-merge-patch+json`` — Kubernetes' own: like a merge patch, but the lists
  that the Go types tag with ``patchStrategy=merge`` are merged by their ``patchMergeKey``
  (containers by ``name``, container ports by ``containerPort``, conditions by ``type``...),
  and the ``$patch``, ``$retainKeys``, ``$setElementOrder/<list>`` and
  ``$deleteFromPrimitiveList/<list>`` directives that kubectl sends are honoured.
  The merge keys come from a table of field names here, not from the Go types: a list field
  whose name is in the table is merged wherever it appears.
"""

from __future__ import annotations

import copy
from typing import Any

from homeostat.lab.kube import errors

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# field name -> merge key(s), the first key present in the items wins.
# Taken from the patchMergeKey tags of k8s.io/api (core/v1, apps/v1, meta/v1).
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "ports": ("containerPort", "port"),
    "imagePullSecrets": ("name",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "resourceClaims": ("name",),
}
# Primitive lists with patchStrategy=merge: union instead of replace.
MERGE_PRIMITIVE_LISTS = frozenset({"finalizers"})


def apply_patch(target: dict[str, Any], patch: Any, content_type: str, *, custom: bool) -> dict[str, Any]:
    """Return a patched deep copy of ``target`` (raising ``ApiError`` on bad patches)."""
    media = content_type.split(";")[0].strip().lower()
    if media == MERGE_PATCH:
        if not isinstance(patch, dict):
            raise errors.bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
        result = merge_patch(target, patch)
    elif media == JSON_PATCH:
        if not isinstance(patch, list):
            raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        result = json_patch(target, patch)
    elif media == STRATEGIC_MERGE_PATCH:
        if custom:
            raise errors.ApiError(415, "UnsupportedMediaType",
                                  "strategic merge patch is not supported for custom resources: "
                                  "use application/merge-patch+json or application/json-patch+json")
        if not isinstance(patch, dict):
            raise errors.bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
        result = strategic_merge_patch(target, patch)
    else:
        raise errors.unsupported_media_type(content_type)
    if not isinstance(result, dict):
        raise errors.bad_request("the patch produced a non-object")
    return result


# --- RFC 7386 ---------------------------------------------------------------------------------

def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# --- RFC 6902 ---------------------------------------------------------------------------------

def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.bad_request(f'JSON pointer "{path}" must start with "/"')
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str], path: str) -> Any:
    current = doc
    for part in parts:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise errors.ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                  f"request: jsonpatch: path {path!r} does not exist")
    return current


def _json_add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise errors.ApiError(422, "Invalid", f"jsonpatch add operation: index out of bounds at {path!r}")
    else:
        raise errors.ApiError(422, "Invalid", f"jsonpatch add operation does not apply: doc is missing path: {path!r}")
    return doc


def _json_remove(doc: Any, parts: list[str], path: str) -> Any:
    if not parts:
        raise errors.ApiError(422, "Invalid", "jsonpatch: cannot remove the root")
    parent = _resolve(doc, parts[:-1], path)
    _resolve(parent, parts[-1:], path)  # raises if missing
    if isinstance(parent, dict):
        return parent.pop(parts[-1])
    return parent.pop(int(parts[-1]))


def json_patch(target: dict[str, Any], operations: list[Any]) -> Any:
    doc: Any = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise errors.bad_request(f"jsonpatch: malformed operation {op!r}")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind == "add":
            doc = _json_add(doc, parts, copy.deepcopy(op.get("value")), path)
        elif kind == "remove":
            _json_remove(doc, parts, path)
        elif kind == "replace":
            _resolve(doc, parts, path)
            if parts:
                _json_remove(doc, parts, path)
            doc = _json_add(doc, parts, copy.deepcopy(op.get("value")), path)
        elif kind in ("move", "copy"):
            source = op.get("from", "")
            value = copy.deepcopy(_resolve(doc, _pointer(source), source))
            if kind == "move":
                _json_remove(doc, _pointer(source), source)
            doc = _json_add(doc, parts, value, path)
        elif kind == "test":
            if _resolve(doc, parts, path) != op.get("value"):
                raise errors.ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                      f"request: testing value {path} failed: test failed")
        else:
            raise errors.bad_request(f"Unexpected kind: {kind}")
    return doc


# --- strategic merge patch ------------------------------------------------------------------

def _merge_key(name: str, items: list[Any]) -> str | None:
    keys = MERGE_KEYS.get(name)
    if not keys:
        return None
    for key in keys:
        if any(isinstance(item, dict) and key in item for item in items):
            return key
    return keys[0]


def strategic_merge_patch(target: Any, patch: dict[str, Any]) -> Any:
    return _smp_map(target if isinstance(target, dict) else {}, patch)


def _smp_map(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    result = copy.deepcopy(target)
    retain = patch.get("$retainKeys")
    orders: dict[str, list[Any]] = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _smp_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            result[key] = _smp_list(key, result.get(key), value)
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _reorder(field, result[field], order)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(name: str, target: Any, patch: list[Any]) -> list[Any]:
    current = target if isinstance(target, list) else []
    if name in MERGE_PRIMITIVE_LISTS and all(not isinstance(item, dict) for item in patch):
        return current + [item for item in patch if item not in current]
    key = _merge_key(name, patch + current)
    if key is None or not all(isinstance(item, dict) for item in patch):
        replace = [item for item in patch if not (isinstance(item, dict) and item.get("$patch") == "replace")]
        return copy.deepcopy(replace)
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy({k: v for k, v in item.items() if k != "$patch"})
                for item in patch if item.get("$patch") != "replace"]
    result = copy.deepcopy(current)
    for item in patch:
        index = next((i for i, old in enumerate(result)
                      if isinstance(old, dict) and key in item and old.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(_smp_map({}, item))
        else:
            result[index] = _smp_map(result[index], item)
    return result


def _reorder(name: str, items: list[Any], order: list[Any]) -> list[Any]:
    """Honour ``$setElementOrder``: listed items first in the given order, the rest after."""
    key = _merge_key(name, items)

    def ident(item: Any) -> Any:
        return item.get(key) if key and isinstance(item, dict) else item

    wanted = [ident(o) for o in order]
    ordered = [item for w in wanted for item in items if ident(item) == w]
    rest = [item for item in items if ident(item) not in wanted]
    return ordered + rest
