"""Offline, strict validation of Kubernetes objects against the API schema carried by the
``kubernetes`` Python client's models (pinned in the ``test`` extra).

    errors = schema_errors(obj)     # [] when valid; else "Deployment/triton: spec.x: ..." lines

Every key must be a field of its model (unknown fields fail: the client's own deserializer
would drop them silently), every value of its declared type; then the object is deserialized
into its model class with ``ApiClient().deserialize`` (a fake response), which checks the
required fields and enums the client validates.
"""
from __future__ import annotations

import json

from kubernetes import client as k8s


class _Response:
    def __init__(self, obj) -> None:
        self.data = json.dumps(obj)


def model_name(obj: dict) -> str:
    """apps/v1 Deployment -> V1Deployment; autoscaling/v2 HorizontalPodAutoscaler -> V2Horizontal..."""
    version = obj.get("apiVersion", "").split("/")[-1]
    return version[0].upper() + version[1:] + obj.get("kind", "")


def _check(value, typ: str, path: str, errors: list[str]) -> None:
    if value is None:
        return
    if typ.startswith("list["):
        if not isinstance(value, list):
            errors.append(f"{path}: must be a list (got {type(value).__name__})")
            return
        for i, v in enumerate(value):
            _check(v, typ[5:-1], f"{path}[{i}]", errors)
    elif typ.startswith("dict("):
        if not isinstance(value, dict):
            errors.append(f"{path}: must be a mapping (got {type(value).__name__})")
            return
        inner = typ[typ.index(",") + 1:-1].strip()
        for k, v in value.items():
            _check(v, inner, f"{path}.{k}", errors)
    elif typ in ("str", "datetime", "date"):
        if not isinstance(value, str):
            errors.append(f"{path}: must be a string (got {value!r})")
    elif typ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: must be an integer (got {value!r})")
    elif typ == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: must be a number (got {value!r})")
    elif typ == "bool":
        if not isinstance(value, bool):
            errors.append(f"{path}: must be true/false (got {value!r})")
    elif typ == "object":
        return  # IntOrString and free-form fields
    else:
        cls = getattr(k8s.models, typ, None)
        if cls is None:
            errors.append(f"{path}: no model {typ} in kubernetes.client")
            return
        if not isinstance(value, dict):
            errors.append(f"{path}: must be a mapping ({typ}; got {value!r})")
            return
        by_json = {j: a for a, j in cls.attribute_map.items()}
        for key, v in value.items():
            if key not in by_json:
                errors.append(f"{path}.{key}: unknown field of {typ}")
                continue
            _check(v, cls.openapi_types[by_json[key]], f"{path}.{key}" if path else key, errors)


def schema_errors(obj: dict) -> list[str]:
    name = model_name(obj)
    label = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
    if getattr(k8s.models, name, None) is None:
        return [f"{label}: no API model {name} (apiVersion {obj.get('apiVersion')!r}, kind {obj.get('kind')!r})"]
    errors: list[str] = []
    _check(obj, name, "", errors)
    if not errors:
        try:
            k8s.ApiClient().deserialize(_Response(obj), name)
        except (ValueError, TypeError) as e:
            errors.append(f"{name}: {e}")
    return [f"{label}: {e}" for e in errors]
