"""The workspaces API's runtime service: the sandbox's runtimes, read-only.

MLOps 1.0 and later manage runtimes (a runtime image plus its settings) per workspace. The
sandbox's runtimes are the scorer programs it ships, the same in every workspace: each runtime of
the seed's catalog (``mlops_nb.api.CATALOGS``) is ``workspaces/<W>/runtimes/<runtime name>``
(``W`` any workspace the caller may read, or ``-`` for all of them), with its runtime image
``workspaces/<W>/runtimeImages/<runtime name>`` and that image's one version
``.../versions/1``. The ones the sandbox runs (MLflow, H2O-3 MOJO) are ``ACTIVE``; the others
(Driverless AI's) are ``DISABLED``, with the reason as ``stateReason``. Lists and counts take
``filter``/``orderBy`` over ``display_name``, ``description``, ``model_type``, ``state``.

Making, changing or removing runtimes, images or versions answers FAILED_PRECONDITION: the
sandbox cannot run other programs than its own.
"""

from __future__ import annotations

from typing import Any

from mlops_nb.api import CATALOGS
from mlops_nb.sandbox.rpc import Call, failed_precondition, handles, invalid_argument, not_found, now
from mlops_nb.sandbox.runtime.runtimes import cannot_run, scorer_program
from mlops_nb.sandbox.services.access import require_project
from mlops_nb.sandbox.services.rest import memory_count, memory_list

__all__: list[str] = []

# When the sandbox's runtimes came to be: this process's start.
SINCE = now()
FIELDS = {"display_name": "displayName", "description": "description", "model_type": "modelType",
          "state": "state", "create_time": "createTime", "update_time": "updateTime"}
IMAGE_FIELDS = {"display_name": "displayName", "description": "description", "state": "state",
                "create_time": "createTime", "update_time": "updateTime"}
VERSION = "1"


def _workspace(call: Call, value: Any, what: str) -> str:
    """The ``workspaces/<W>`` a runtime name or parent starts with, once the caller may read W."""
    parts = str(value or "").split("/")
    if len(parts) < 2 or parts[0] != "workspaces" or not parts[1]:
        raise invalid_argument(f"{what} must start with 'workspaces/<workspace id>' (or 'workspaces/-' for all "
                               f"of them), got {value!r}")
    if parts[1] != "-":
        require_project(call, parts[1])
    return "/".join(parts[:2])


def _state(runtime_name: str) -> tuple[str, str]:
    reason = cannot_run(runtime_name)
    return ("DISABLED", reason) if reason else ("ACTIVE", "")


def _runtime(parent: str, row: dict[str, str]) -> dict[str, Any]:
    name = row["runtime_name"]
    state, reason = _state(name)
    return {"name": f"{parent}/runtimes/{name}", "displayName": row["runtime_display_name"],
            "description": row["model_description"], "modelType": row["model_type"],
            "runtimeImage": f"{parent}/runtimeImages/{name}", "environmentVariables": {}, "volumes": [],
            "selector": {}, "dataVolumeReadOnly": False, "createTime": SINCE, "updateTime": SINCE,
            "state": state, "stateReason": reason, "stateUpdateTime": SINCE, "managedByBootstrap": True}


def _program(runtime_name: str) -> str:
    """What the sandbox runs for a runtime, in place of a container image."""
    if cannot_run(runtime_name):
        return f"none: {runtime_name} does not run in the sandbox"
    return f"sandbox process: python {scorer_program(runtime_name).name}"


def _image(parent: str, row: dict[str, str]) -> dict[str, Any]:
    name = row["runtime_name"]
    state, reason = _state(name)
    image = f"{parent}/runtimeImages/{name}"
    return {"name": image, "displayName": row["runtime_display_name"], "description": row["model_description"],
            "dockerImage": _program(name), "runtimeImageVersionId": VERSION,
            "currentVersion": f"{image}/versions/{VERSION}", "state": state, "stateReason": reason,
            "createTime": SINCE, "updateTime": SINCE, "stateUpdateTime": SINCE, "managedByBootstrap": True}


def _version(image: dict[str, Any]) -> dict[str, Any]:
    return {"name": image["currentVersion"], "image": image["dockerImage"], "state": image["state"],
            "stateReason": image["stateReason"], "createTime": SINCE, "updateTime": SINCE,
            "stateUpdateTime": SINCE, "managedByBootstrap": True, "readinessProbePath": "/readyz",
            "architectures": []}


def _one(call: Call, name: Any, build: Any, what: str, depth: int) -> dict[str, Any]:
    """The runtime or image named ``workspaces/W/<collection>/<runtime name>[/versions/1]``."""
    parent = _workspace(call, name, "name")
    parts = str(name).split("/")
    if len(parts) != depth:
        raise invalid_argument(f"name {name!r} is not a {what} name")
    row = next((r for r in CATALOGS.runtimes if r["runtime_name"] == parts[3]), None)
    if row is None or (depth == 6 and parts[5] != VERSION):
        raise not_found(what, str(name))
    return build(parent, row)


@handles("runtime.runtime.get_runtime", generation="workspaces")
def get_runtime(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"runtime": _one(call, request.get("name"), _runtime, "runtime", 4)}


def _runtimes(call: Call, request: dict[str, Any]) -> list[dict[str, Any]]:
    parent = _workspace(call, request.get("parent"), "parent")
    return [_runtime(parent, r) for r in CATALOGS.runtimes]


@handles("runtime.runtime.list_runtimes", generation="workspaces")
def list_runtimes(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    page, token = memory_list(_runtimes(call, request), request, FIELDS)
    return {"runtimes": page, "nextPageToken": token}


@handles("runtime.runtime.count_runtimes", generation="workspaces")
def count_runtimes(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"count": str(memory_count(_runtimes(call, request), request, FIELDS))}


@handles("runtime.runtime_image.get_runtime_image", generation="workspaces")
def get_runtime_image(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"runtimeImage": _one(call, request.get("name"), _image, "runtime image", 4)}


def _images(call: Call, request: dict[str, Any]) -> list[dict[str, Any]]:
    parent = _workspace(call, request.get("parent"), "parent")
    return [_image(parent, r) for r in CATALOGS.runtimes]


@handles("runtime.runtime_image.list_runtime_images", generation="workspaces")
def list_runtime_images(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    page, token = memory_list(_images(call, request), request, IMAGE_FIELDS)
    return {"runtimeImages": page, "nextPageToken": token}


@handles("runtime.runtime_image.count_runtime_images", generation="workspaces")
def count_runtime_images(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"count": str(memory_count(_images(call, request), request, IMAGE_FIELDS))}


@handles("runtime.runtime_image_version.get_runtime_image_version", generation="workspaces")
def get_runtime_image_version(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    name = request.get("name")
    image = _one(call, "/".join(str(name).split("/")[:4]), _image, "runtime image", 4)
    if str(name).split("/")[4:] != ["versions", VERSION]:
        raise not_found("runtime image version", str(name))
    return {"runtimeImageVersion": _version(image)}


def _versions(call: Call, request: dict[str, Any]) -> list[dict[str, Any]]:
    return [_version(_one(call, request.get("parent"), _image, "runtime image", 4))]


@handles("runtime.runtime_image_version.list_runtime_image_versions", generation="workspaces")
def list_runtime_image_versions(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    page, token = memory_list(_versions(call, request), request, IMAGE_FIELDS)
    return {"runtimeImageVersions": page, "nextPageToken": token}


@handles("runtime.runtime_image_version.count_runtime_image_versions", generation="workspaces")
def count_runtime_image_versions(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    return {"count": str(memory_count(_versions(call, request), request, IMAGE_FIELDS))}


def _read_only(call: Call, request: dict[str, Any]) -> None:
    raise failed_precondition(READ_ONLY)


READ_ONLY = (
    "the sandbox's runtimes are the scorer programs it ships (MLflow and H2O-3 MOJO; list them with "
    "ListRuntimes); it cannot make, change or remove runtimes, runtime images or their versions")

for _name in ("runtime.runtime.create_runtime", "runtime.runtime.update_runtime", "runtime.runtime.delete_runtime",
              "runtime.runtime.deprecate_runtime", "runtime.runtime.disable_runtime", "runtime.runtime.enable_runtime",
              "runtime.runtime_image.create_runtime_image", "runtime.runtime_image.update_runtime_image",
              "runtime.runtime_image.delete_runtime_image", "runtime.runtime_image.deprecate_runtime_image",
              "runtime.runtime_image.disable_runtime_image", "runtime.runtime_image.enable_runtime_image",
              "runtime.runtime_image_version.create_runtime_image_version",
              "runtime.runtime_image_version.activate_runtime_image_version",
              "runtime.runtime_image_version.deprecate_runtime_image_version",
              "runtime.runtime_image_version.disable_runtime_image_version"):
    handles(_name, generation="workspaces")(_read_only)
