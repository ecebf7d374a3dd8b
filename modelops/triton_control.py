"""Live model control of a running Triton over gRPC (explicit model-control mode).

    load(url, "yolov8n")                  # load/reload: the newest version comes up while the old serves
    load(url, "yolov8n", version=3)       # pin version 3 (a config override; nothing deleted)
    unload(url, "yolov8n")
    server_states(url)                    # {(model, version): "READY" | "UNAVAILABLE" | ...}

With ``version_policy: { latest { num_versions: 1 } }`` a ``load`` after ``add`` brings up
the new version while the old one keeps serving, then retires the old one. Pinning
overrides the deployed config's version_policy with ``specific: [version]``. Failures
raise ``ModelRepoError`` (``modelops.layout``) naming the server and model, with a hint
when the server is unreachable or not in explicit mode.

Imports: tritonclient (lazily), ``modelops.layout``.
"""
from __future__ import annotations

import json
import os

from modelops.layout import ModelRepoError

__all__ = ["DEFAULT_URL", "server_states", "load", "unload"]

DEFAULT_URL = os.environ.get("TRITON_GRPC_URL", "localhost:8001")


def _client(url: str):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    try:
        client = grpcclient.InferenceServerClient(url)
        client.is_server_live(client_timeout=5)
    except InferenceServerException as e:
        raise ModelRepoError(f"Triton at {url} is unreachable ({e.message()}): start it (make triton-up) "
                             f"or pass --url HOST:GRPC_PORT") from e
    return client


def server_states(url: str) -> dict[tuple[str, int], str]:
    """(model, version) -> state ('READY', 'UNAVAILABLE', ...) from the repository index."""
    index = _client(url).get_model_repository_index(as_json=True).get("models", [])
    return {(m["name"], int(m["version"])): m.get("state", "") for m in index if m.get("version")}


def _control_error(e, action: str, model: str, url: str) -> ModelRepoError:
    msg = e.message() if hasattr(e, "message") else str(e)
    if "not allowed" in msg or "explicit" in msg.lower() or "polling" in msg.lower():
        return ModelRepoError(f"Triton at {url} refused to {action} '{model}': {msg}. The repository API needs the "
                              f"server started with --model-control-mode=explicit (launchers.triton does this)")
    return ModelRepoError(f"Triton at {url} failed to {action} '{model}': {msg}")


def load(url: str, model: str, version: int | None = None, timeout_s: float = 300.0) -> list[int]:
    """Load (or reload) ``model``; with ``version`` pin that one. Returns the READY versions.

    Triton loads the new version while the old keeps serving and swaps when it is ready.
    Pinning overrides the config's version_policy with ``specific: [version]`` using the
    config the server has now, so the rest of the config stays as deployed.
    """
    from tritonclient.utils import InferenceServerException

    client = _client(url)
    try:
        if version is None:
            client.load_model(model, client_timeout=timeout_s)
        else:
            try:
                cfg = client.get_model_config(model, as_json=True)["config"]
            except InferenceServerException as e:
                raise ModelRepoError(f"'{model}' is not loaded on {url}, so there is no deployed config to pin a "
                                     f"version in: load it first ({e.message()})") from e
            cfg["version_policy"] = {"specific": {"versions": [int(version)]}}
            client.load_model(model, config=json.dumps(cfg), client_timeout=timeout_s)
    except InferenceServerException as e:
        raise _control_error(e, "load", model, url) from e
    return sorted(v for (m, v), s in server_states(url).items() if m == model and s == "READY")


def unload(url: str, model: str, unload_dependents: bool = False) -> None:
    from tritonclient.utils import InferenceServerException

    client = _client(url)
    try:
        client.unload_model(model, unload_dependents=unload_dependents)
    except InferenceServerException as e:
        raise _control_error(e, "unload", model, url) from e
