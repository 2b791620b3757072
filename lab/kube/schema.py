"""Structural-schema handling of custom resources: pruning, defaulting, validation.

The order is the API server's: prune unknown fields, apply ``default``s, then validate and
report every violation as a ``field.Error`` worded like kube-openapi's validator
(``spec.interval: Invalid value: "5x": spec.interval in body should match '^...$'``).

Supported keywords: type, nullable, properties, additionalProperties, items, required, enum,
minimum/maximum (+exclusive*), multipleOf, minLength/maxLength, pattern, minItems/maxItems,
uniqueItems, minProperties/maxProperties, allOf/anyOf/oneOf/not (as value checks),
x-kubernetes-preserve-unknown-fields, x-kubernetes-int-or-string,
x-kubernetes-embedded-resource. Not supported: ``format`` checks, CEL
(x-kubernetes-validations), list-type/map-keys uniqueness, ratcheting.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from homeostat.lab.kube.errors import FieldError, format_value

PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"
EMBEDDED = "x-kubernetes-embedded-resource"
_ROOT_KEEP = ("apiVersion", "kind", "metadata")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# --- pruning ------------------------------------------------------------------------------------

def prune(value: Any, schema: dict[str, Any], *, root: bool = False) -> Any:
    """Drop fields that the schema does not specify (in place for dicts; returns the value)."""
    if isinstance(value, dict):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        keep_unknown = bool(schema.get(PRESERVE)) or additional is True
        for key in list(value):
            if root and key in _ROOT_KEEP:
                continue
            if schema.get(EMBEDDED) and key in _ROOT_KEEP:
                continue
            if props is not None and key in props:
                value[key] = prune(value[key], props[key])
            elif isinstance(additional, dict):
                value[key] = prune(value[key], additional)
            elif not keep_unknown:
                del value[key]
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            value[index] = prune(item, schema["items"])
    return value


# --- defaulting ---------------------------------------------------------------------------------

def apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Fill in ``default`` values of absent (or null but non-nullable) properties, recursively."""
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if "default" in sub and (key not in value or (value[key] is None and not sub.get("nullable"))):
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = apply_defaults(value[key], sub)
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            props = schema.get("properties") or {}
            for key in value:
                if key not in props:
                    value[key] = apply_defaults(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            value[index] = apply_defaults(item, schema["items"])
    return value


# --- validation ---------------------------------------------------------------------------------

def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, wanted: str) -> bool:
    actual = _type_name(value)
    return actual == wanted or (wanted == "number" and actual == "integer")


def validate(value: Any, schema: dict[str, Any], path: str = "") -> list[FieldError]:
    """Every violation of ``schema`` by ``value``; ``path`` is the dotted field path (``spec.x``)."""
    found: list[FieldError] = []
    shown = path or "<root>"

    def invalid(detail: str, reason: str = "FieldValueInvalid") -> None:
        found.append(FieldError(reason, path, f"Invalid value: {format_value(value)}: {detail}"))

    if value is None:
        if schema.get("nullable") or (schema.get(PRESERVE) and "type" not in schema):
            return found
        if "type" in schema or schema.get(INT_OR_STRING):
            wanted = schema.get("type") or "string"
            found.append(FieldError("FieldValueTypeInvalid", path,
                                    f'Invalid value: "null": {shown} in body must be of type {wanted}: "null"'))
        return found

    if schema.get(INT_OR_STRING):
        if _type_name(value) not in ("integer", "string"):
            found.append(FieldError("FieldValueTypeInvalid", path,
                                    f'Invalid value: "{_type_name(value)}": {shown} in body must be of type '
                                    f'integer,string: "{_type_name(value)}"'))
            return found
    elif (wanted := schema.get("type")) and not _type_ok(value, wanted):
        actual = _type_name(value)
        found.append(FieldError("FieldValueTypeInvalid", path,
                                f'Invalid value: "{actual}": {shown} in body must be of type {wanted}: "{actual}"'))
        return found

    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(format_value(v) for v in schema["enum"])
        found.append(FieldError("FieldValueNotSupported", path,
                                f"Unsupported value: {format_value(value)}: supported values: {supported}"))

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema:
            if schema.get("exclusiveMinimum") and value <= schema["minimum"]:
                invalid(f"{shown} in body should be greater than {schema['minimum']}")
            elif value < schema["minimum"]:
                invalid(f"{shown} in body should be greater than or equal to {schema['minimum']}")
        if "maximum" in schema:
            if schema.get("exclusiveMaximum") and value >= schema["maximum"]:
                invalid(f"{shown} in body should be less than {schema['maximum']}")
            elif value > schema["maximum"]:
                invalid(f"{shown} in body should be less than or equal to {schema['maximum']}")
        if schema.get("multipleOf") and (value / schema["multipleOf"]) % 1:
            invalid(f"{shown} in body should be a multiple of {schema['multipleOf']}")

    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            invalid(f"{shown} in body should be at least {schema['minLength']} chars long")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            found.append(FieldError("FieldValueTooLong", path,
                                    f"Too long: may not be more than {schema['maxLength']} bytes"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            invalid(f"{shown} in body should match '{schema['pattern']}'")

    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            found.append(FieldError("FieldValueInvalid", path,
                                    f"Invalid value: {len(value)}: {shown} in body should have at least "
                                    f"{schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            found.append(FieldError("FieldValueTooMany", path,
                                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items"))
        if schema.get("uniqueItems") and len({repr(v) for v in value}) != len(value):
            found.append(FieldError("FieldValueDuplicate", path, f"Duplicate value: {shown} shall not repeat"))
        if isinstance(schema.get("items"), dict):
            for index, item in enumerate(value):
                found += validate(item, schema["items"], f"{path}[{index}]")

    if isinstance(value, dict):
        for key in schema.get("required") or []:
            if key not in value:
                found.append(FieldError("FieldValueRequired", _join(path, key), "Required value"))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            invalid(f"{shown} in body should have at least {schema['minProperties']} properties")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            invalid(f"{shown} in body should have at most {schema['maxProperties']} properties")
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                found += validate(item, props[key], _join(path, key))
            elif isinstance(additional, dict):
                found += validate(item, additional, _join(path, key))

    for sub in schema.get("allOf") or []:
        found += validate(value, sub, path)
    if schema.get("anyOf") and not any(not validate(value, sub, path) for sub in schema["anyOf"]):
        invalid(f"{shown} in body must match at least one schema in anyOf")
    if schema.get("oneOf") and sum(not validate(value, sub, path) for sub in schema["oneOf"]) != 1:
        invalid(f"{shown} in body must validate one and only one schema (oneOf)")
    if isinstance(schema.get("not"), dict) and not validate(value, schema["not"], path):
        invalid(f"{shown} in body must not validate the schema (not)")
    return found


def process(obj: dict[str, Any], schema: dict[str, Any] | None) -> list[FieldError]:
    """Prune, default and validate a whole custom object in place; return the errors."""
    if not schema:
        return []
    prune(obj, schema, root=True)
    apply_defaults(obj, schema)
    without_meta = {k: v for k, v in obj.items() if k not in _ROOT_KEEP}
    meta_free_schema = dict(schema)
    meta_free_schema["properties"] = {k: v for k, v in (schema.get("properties") or {}).items()
                                      if k not in _ROOT_KEEP}
    meta_free_schema["required"] = [k for k in schema.get("required") or [] if k not in _ROOT_KEEP]
    return validate(without_meta, meta_free_schema)
