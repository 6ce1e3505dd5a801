"""Storage's workspaces-only calls: presigned uploads and downloads, and model ingestion.

MLOps 1.0 and later move an artifact's bytes outside the API (``h2o-mlops`` 1.4+):

1. ``GenerateArtifactUploadURL`` answers a presigned URL; here it is the sandbox's own
   ``{gateway}/presigned/{token}``, with a one-time random token that stands for the caller (no
   bearer header is sent there), valid for :data:`URL_LIFETIME` seconds;
2. the client PUTs the bytes there (at most :data:`MAX_UPLOAD_BYTES`; the artifact is
   ``BEING_UPLOADED``);
3. ``CompleteArtifactUpload`` makes them the artifact's (``AVAILABLE``, with size and MD5; a
   ``sizeBytes`` or ``md5Digest`` sent along must match), ``FailArtifactUpload`` drops them
   (``UPLOAD_FAILED``). An upload not completed in :data:`URL_LIFETIME` seconds is dropped too.

``GenerateArtifactDownloadURL`` answers a one-time URL a plain GET reads the bytes from.

Model ingestion: ``RequestModelIngestion`` runs the sandbox's ingest (:mod:`.ingest`: MLflow,
H2O-3 MOJO, DAI MOJO pipeline) on the uploaded artifact at once and records the result with the
artifact (``modelIngestionState``: ``SUCCEEDED``, or ``FAILED`` with the reason); a second request
for the same artifact changes nothing, as on MLOps. ``CompleteModelIngestion`` and
``FailModelIngestion`` (the ingestion job's write-back) record a result given by the caller.
``CreateExperiment`` with ``artifactId`` then takes the artifact type, metadata and target
column from that result (:func:`ingestion_of`).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mlops_nb.sandbox.rpc import Call, RpcError, failed_precondition, handles, invalid_argument, now
from mlops_nb.sandbox.services.artifacts import (
    MODEL_INGESTION,
    abort_upload,
    artifact_chunks,
    begin_upload,
    finish_upload,
    readable_artifact,
    writable_artifact,
)
from mlops_nb.sandbox.services.entities import replace_data
from mlops_nb.sandbox.services.ingest import ingest_artifact
from mlops_nb.sandbox.store import Store
from mlops_nb.wire.errors import GRPC_TO_HTTP

__all__ = ["MAX_UPLOAD_BYTES", "PRESIGNED_PREFIX", "URL_LIFETIME", "ingestion_of", "presigned_download",
           "presigned_upload"]

PRESIGNED_PREFIX = "/presigned"
URL_LIFETIME = 15 * 60  # seconds
MAX_UPLOAD_BYTES = 2 * 1024**3


@dataclass
class _Grant:
    """What a presigned URL allows: one PUT (or GET) of one artifact, by the user it was made for."""

    verb: str
    artifact_id: str
    call: Call
    expires: float


class _Presigned:
    """One store's outstanding presigned URLs, and the uploads that wait for CompleteArtifactUpload."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.grants: dict[str, _Grant] = {}
        self.pending: dict[str, tuple[Any, float]] = {}  # artifact id -> (upload, dropped after)

    def grant(self, verb: str, artifact_id: str, call: Call) -> tuple[str, float]:
        token = secrets.token_urlsafe(32)
        expires = time.time() + URL_LIFETIME
        with self.lock:
            self.grants[token] = _Grant(verb, artifact_id, call, expires)
        return token, expires

    def take(self, token: str, verb: str) -> _Grant:
        """The grant of ``token`` (used up), or PERMISSION_DENIED."""
        with self.lock:
            grant = self.grants.get(token)
            if grant is not None and grant.verb == verb:
                del self.grants[token]
        if grant is None or grant.verb != verb or grant.expires < time.time():
            raise RpcError(7, f"this presigned URL is unknown, used already or expired (each works once, for "
                              f"{URL_LIFETIME // 60} minutes); ask for a new one")
        return grant

    def expired(self) -> list[Any]:
        """Uploads whose completion did not come in time, and grants past their time, forgotten."""
        moment = time.time()
        with self.lock:
            self.grants = {k: g for k, g in self.grants.items() if g.expires >= moment}
            stale = [aid for aid, (_, until) in self.pending.items() if until < moment]
            return [self.pending.pop(aid)[0] for aid in stale]


_PRESIGNED: weakref.WeakKeyDictionary[Store, _Presigned] = weakref.WeakKeyDictionary()
_PRESIGNED_LOCK = threading.Lock()


def _presigned(store: Store) -> _Presigned:
    with _PRESIGNED_LOCK:
        found = _PRESIGNED.get(store)
        if found is None:
            found = _PRESIGNED[store] = _Presigned()
    for upload in found.expired():
        abort_upload(store, upload)
    return found


def _timestamp(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _artifact_id(request: dict[str, Any], field: str = "id") -> str:
    value = request.get(field)
    if not isinstance(value, str) or not value:
        raise invalid_argument(f"{field} (the artifact id) is required")
    return value


# -- presigned upload ------------------------------------------------------------------------


@handles("storage.artifact.generate_artifact_upload_url", generation="workspaces")
def generate_artifact_upload_url(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    artifact = writable_artifact(call, _artifact_id(request))
    if artifact.get("state") in ("AVAILABLE", "BEING_UPLOADED"):
        raise failed_precondition(f"artifact {artifact['id']!r} is {artifact['state']}; create a new artifact "
                                  "to upload other bytes")
    token, expires = _presigned(call.store).grant("PUT", artifact["id"], call)
    return {"presignedUrl": {"url": f"{call.base_url}{PRESIGNED_PREFIX}/{token}", "method": "HTTP_METHOD_PUT",
                             "contentType": artifact.get("mimeType", ""), "expiresAt": _timestamp(expires)}}


async def presigned_upload(store: Store, request: Request) -> Response:
    """``PUT {gateway}/presigned/{token}``: the bytes of the artifact the token was made for."""
    try:
        registry = await run_in_threadpool(_presigned, store)
        grant = registry.take(request.path_params["token"], "PUT")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            raise RpcError(3, f"the upload is {int(declared)} bytes, more than the sandbox takes "
                              f"({MAX_UPLOAD_BYTES} bytes)")
        upload = await run_in_threadpool(begin_upload, grant.call, grant.artifact_id)
    except RpcError as e:
        return _error(e)
    try:
        async for piece in _bounded(request.stream()):
            await run_in_threadpool(upload.append_bytes, piece)
    except (RpcError, ClientDisconnect) as e:
        await run_in_threadpool(abort_upload, store, upload)
        return _error(e if isinstance(e, RpcError) else RpcError(1, "the client went away during the upload"))
    with registry.lock:
        registry.pending[grant.artifact_id] = (upload, time.time() + URL_LIFETIME)
    return Response(status_code=200)


async def _bounded(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    received = 0
    async for piece in stream:
        received += len(piece)
        if received > MAX_UPLOAD_BYTES:
            raise RpcError(3, f"the upload is larger than the sandbox takes ({MAX_UPLOAD_BYTES} bytes)")
        yield piece


def _error(e: RpcError) -> Response:
    return JSONResponse({"code": e.code, "message": e.message, "details": []},
                        status_code=GRPC_TO_HTTP.get(e.code, 500))


def _pending(call: Call, artifact_id: str) -> Any:
    registry = _presigned(call.store)
    with registry.lock:
        entry = registry.pending.pop(artifact_id, None)
    return entry[0] if entry is not None else None


@handles("storage.artifact.complete_artifact_upload", generation="workspaces")
def complete_artifact_upload(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    artifact = writable_artifact(call, _artifact_id(request))
    upload = _pending(call, artifact["id"])
    if upload is None:
        raise failed_precondition(f"artifact {artifact['id']!r} has no uploaded bytes waiting (its state is "
                                  f"{artifact.get('state', 'EMPTY')}); PUT them to the URL of "
                                  "GenerateArtifactUploadURL first")
    size, digest = request.get("sizeBytes"), request.get("md5Digest")
    problems = []
    if size not in (None, "", "0", 0) and int(size) != upload.received:
        problems.append(f"sizeBytes is {size} but {upload.received} bytes arrived")
    if digest and digest not in (upload.md5.hexdigest(), base64.b64encode(upload.md5.digest()).decode()):
        problems.append("md5Digest does not match the bytes that arrived")
    if problems:
        abort_upload(call.store, upload)
        raise invalid_argument("; ".join(problems) + "; the upload is dropped, upload again")
    finish_upload(call.store, upload)
    return {"artifact": readable_artifact(call, artifact["id"])}


@handles("storage.artifact.fail_artifact_upload", generation="workspaces")
def fail_artifact_upload(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    artifact = writable_artifact(call, _artifact_id(request))
    upload = _pending(call, artifact["id"])
    if upload is not None:
        abort_upload(call.store, upload)
    elif artifact.get("state") == "AVAILABLE":
        raise failed_precondition(f"artifact {artifact['id']!r} is AVAILABLE already; its upload cannot fail")
    else:
        with call.store.transaction():
            current = writable_artifact(call, artifact["id"])
            current.update(state="UPLOAD_FAILED", lastModifiedTime=now())
            replace_data(call.store, "artifact", current)
    return {"artifact": readable_artifact(call, artifact["id"])}


# -- presigned download ----------------------------------------------------------------------


@handles("storage.artifact.generate_artifact_download_url", generation="workspaces")
def generate_artifact_download_url(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    artifact = readable_artifact(call, _artifact_id(request))
    if artifact.get("state") != "AVAILABLE":
        raise failed_precondition(f"artifact {artifact['id']!r} has no bytes to download (its state is "
                                  f"{artifact.get('state', 'EMPTY')})")
    token, expires = _presigned(call.store).grant("GET", artifact["id"], call)
    return {"presignedUrl": {"url": f"{call.base_url}{PRESIGNED_PREFIX}/{token}", "method": "HTTP_METHOD_GET",
                             "contentType": artifact.get("mimeType", ""), "expiresAt": _timestamp(expires)}}


async def presigned_download(store: Store, request: Request) -> Response:
    """``GET {gateway}/presigned/{token}``: the bytes of the artifact the token was made for."""
    try:
        grant = (await run_in_threadpool(_presigned, store)).take(request.path_params["token"], "GET")
        artifact = await run_in_threadpool(readable_artifact, grant.call, grant.artifact_id)
    except RpcError as e:
        return _error(e)
    return StreamingResponse(artifact_chunks(store, grant.artifact_id),
                             media_type=artifact.get("mimeType") or "application/octet-stream",
                             headers={"Content-Length": str(artifact.get("size", 0))})


# -- model ingestion ---------------------------------------------------------------------------


def _set_ingestion(call: Call, artifact_id: str, state: dict[str, Any], result: dict[str, Any] | None) -> None:
    with call.store.transaction() as db:
        artifact = writable_artifact(call, artifact_id, id_name="artifactId")
        artifact.update(modelIngestionState=state, lastModifiedTime=now())
        replace_data(call.store, "artifact", artifact)
        db.execute("DELETE FROM entity WHERE kind = ? AND id = ?", (MODEL_INGESTION, artifact_id))
        if result is not None:
            row = call.store.row("artifact", artifact_id)
            call.store.put(MODEL_INGESTION, {"id": artifact_id, **result}, project_id=row["project_id"],
                           parent_id=artifact_id, owner_id=call.user_id)


@handles("storage.model_ingestion.request_model_ingestion", generation="workspaces")
def request_model_ingestion(call: Call, request: dict[str, Any]) -> None:
    artifact = writable_artifact(call, _artifact_id(request, "artifactId"), id_name="artifactId")
    if artifact.get("modelIngestionState"):
        return  # one ingestion per artifact, as on MLOps
    try:
        found = ingest_artifact(call, artifact["id"])
    except RpcError as e:
        if e.code != 3:
            raise
        _set_ingestion(call, artifact["id"], {"status": "FAILED", "errorMessage": e.message}, None)
        return
    _set_ingestion(call, artifact["id"], {"status": "SUCCEEDED"}, {
        "artifactType": found["artifactType"], "metadata": found["modelMetadata"],
        "parameters": found["modelParameters"]})


@handles("storage.model_ingestion.complete_model_ingestion", generation="workspaces")
def complete_model_ingestion(call: Call, request: dict[str, Any]) -> None:
    artifact_id = _artifact_id(request, "artifactId")
    _set_ingestion(call, artifact_id, {"status": "SUCCEEDED"}, {
        "artifactType": request.get("artifactType", ""), "metadata": request.get("metadata") or {"values": {}},
        "parameters": request.get("parameters") or {}})


@handles("storage.model_ingestion.fail_model_ingestion", generation="workspaces")
def fail_model_ingestion(call: Call, request: dict[str, Any]) -> None:
    artifact_id = _artifact_id(request, "artifactId")
    message = request.get("errorMessage") or "model ingestion failed"
    _set_ingestion(call, artifact_id, {"status": "FAILED", "errorMessage": message}, None)


def ingestion_of(call: Call, artifact_id: str) -> dict[str, Any]:
    """The successful ingestion of an artifact the caller may change: artifactType, metadata
    (``StorageMetadata``), parameters; FAILED_PRECONDITION when there is none."""
    artifact = writable_artifact(call, artifact_id, id_name="artifact_id")
    state = artifact.get("modelIngestionState") or {}
    result = call.store.get(MODEL_INGESTION, artifact_id)
    if state.get("status") != "SUCCEEDED" or result is None:
        why = state.get("errorMessage") or f"its model ingestion is {state.get('status', 'not requested')}"
        raise failed_precondition(f"artifact {artifact_id!r} cannot make an experiment: {why}; call "
                                  "RequestModelIngestion and wait for SUCCEEDED")
    return result
