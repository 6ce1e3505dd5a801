"""ArtifactService and ByteStream: artifact records and the bytes behind them.

An artifact belongs to one entity (``entityId``): a project, an experiment, a registered
model version or a dataset. Whoever may read the entity may read its artifacts and their
bytes (experiments and datasets are readable from every project they are linked into;
a deleted experiment hides its artifacts); creating, changing, uploading and deleting
need write access to the entity's home project. ``UpdateArtifact`` may move an artifact
to another entity (``entityId`` in the mask), given write access to both: the official
client uploads a model as an artifact of its project, then moves it to the experiment.

Lifecycle of an artifact's state:

* CreateArtifact makes it ``EMPTY`` (state, size, md5Digest sent by the client are ignored).
* ByteStream ``Write`` makes it ``BEING_UPLOADED`` while bytes arrive and ``AVAILABLE``
  at ``finishWrite``, with ``size``, ``md5Digest`` (base64 of the MD5 digest) and
  ``uploadedTime``. A Write that fails or is cut short leaves ``UPLOAD_FAILED`` and keeps
  no bytes; upload again from offset 0. Writes are not resumable: every Write call
  starts at offset 0, and each message's ``writeOffset`` must equal the bytes received
  so far (else OUT_OF_RANGE). Writing to an ``AVAILABLE`` artifact is FAILED_PRECONDITION:
  create a new artifact instead. One message may carry at most 8 MiB of JSON.
* ``Read`` streams the bytes back (``readOffset``/``readLimit`` honoured); NOT_FOUND
  unless the artifact is ``AVAILABLE``. ``QueryWriteStatus`` tells the bytes received by
  the running upload, or the size of a finished one (``complete``).

``UpdateArtifact`` changes ``type``, ``mimeType``, ``location`` and ``entityId``; ``updateMask`` is a
comma-separated list of field names (python or JSON spelling). An empty mask updates
every updatable field the request sets; metadata keys are added or replaced, never
removed. The same rule (:func:`mlops_nb.sandbox.services.entities.apply_update`) serves every update of
the sandbox.

The bytes live in files in ``<db>.blobs/`` beside the database, written under a
temporary name and renamed at ``finishWrite``; with ``db=":memory:"`` they live in a
table instead. Neither ever holds a whole artifact in memory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from mlops_nb.api import API
from mlops_nb.sandbox.rpc import (
    Call,
    ListQuery,
    RpcError,
    count_matching,
    failed_precondition,
    handles,
    handles_stream,
    invalid_argument,
    list_page,
    new_id,
    not_found,
    now,
    page_response,
    parse_json,
)
from mlops_nb.sandbox.services.access import require_via_project
from mlops_nb.sandbox.services.entities import apply_update, find_dataset, find_experiment, replace_data
from mlops_nb.sandbox.services.rest import storage_filter
from mlops_nb.sandbox.store import Store
from mlops_nb.wire.messages import Message, message_class

__all__ = [
    "MIGRATIONS",
    "artifact_chunks",
    "readable_artifact",
    "ARTIFACT_OWNER_KINDS",
    "delete_artifact_rows",
    "remove_blobs",
    "begin_upload",
    "finish_upload",
    "abort_upload",
    "write_artifact_bytes",
    "delete_artifacts",
    "writable_artifact",
    "MODEL_INGESTION",
]

# What a model ingestion found in an artifact (kept by the workspaces API's storage calls, see
# services/uploads.py): an entity whose parent is the artifact, gone with it.
MODEL_INGESTION = "model_ingestion"

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0500_artifact_blob",
        """
        CREATE TABLE artifact_blob (
            blob_key TEXT NOT NULL,
            start INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (blob_key, start)
        );
        """,
    ),
]

# The kinds of entity an artifact may belong to.
# The official client uploads a model zip as an artifact of the project, ingests it, then
# moves the artifact to the experiment it creates (UpdateArtifact, mask ``type,entityId``).
ARTIFACT_OWNER_KINDS = ("experiment", "registered_model_version", "dataset", "project")

ARTIFACT_UPDATABLE = ("type", "mime_type", "location", "entity_id")
READ_CHUNK = 64 * 1024
# grpc-gateway hands each message to a gRPC server, whose default limit is 4 MiB of proto;
# as base64 inside JSON that is a little over 5.3 MiB, so 8 MiB leaves room and bounds memory.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
OUT_OF_RANGE = 11
RESOURCE_EXHAUSTED = 8
CANCELLED = 1


# -- helpers shared by the sandbox's artifact, model, dataset and deployment modules ----------


def delete_artifact_rows(store: Store, entity_ids: Sequence[str]) -> list[str]:
    """Delete the artifacts of these entities (inside the caller's transaction); return their ids.

    Call :func:`remove_blobs` with the result once the transaction has committed.
    """
    with store.transaction() as db:
        # json_each, not a placeholder per id: a project may hold more entities than SQLite takes parameters.
        ids = [r["id"] for r in db.execute(
            "SELECT id FROM entity WHERE kind = 'artifact' AND parent_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(entity_ids)),))]
        _delete_artifacts(store, db, ids)
    return ids


def remove_blobs(store: Store, artifact_ids: Sequence[str]) -> None:
    """Drop the bytes of deleted artifacts (after the deleting transaction has committed)."""
    blobs = _blobs(store)
    for artifact_id in artifact_ids:
        blobs.remove_committed(artifact_id)


def artifact_chunks(store: Store, artifact_id: str) -> Iterator[bytes]:
    """The bytes of an uploaded artifact, in pieces (for the deployment supervisor and ingest)."""
    return _blobs(store).chunks(artifact_id, 0, 0)


def _delete_artifacts(store: Store, db: sqlite3.Connection, artifact_ids: Sequence[str]) -> None:
    blobs = _blobs(store)
    for artifact_id in artifact_ids:
        if blobs.uploading(artifact_id):
            raise failed_precondition(f"artifact {artifact_id!r} is being uploaded; "
                                      "delete it once the upload has ended")
        db.execute("DELETE FROM entity WHERE kind = 'artifact' AND id = ?", (artifact_id,))
        db.execute("DELETE FROM entity WHERE kind = ? AND parent_id = ?", (MODEL_INGESTION, artifact_id))
        blobs.remove_in_transaction(db, artifact_id)


# -- where the bytes live -------------------------------------------------------------------


class _BlobWriter(Protocol):
    def write(self, data: bytes) -> None: ...

    def publish(self) -> None:
        """Make the written bytes the artifact's (inside the transaction that marks it AVAILABLE)."""

    def discard(self) -> None: ...


class _Blobs:
    """The bytes of one store's artifacts, and the uploads running against it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.directory = None if store.path == ":memory:" else Path(store.path + ".blobs")
        self._lock = threading.Lock()
        # The uploads running in this process: a BEING_UPLOADED artifact without one here was
        # cut off by a restart, and may be uploaded again.
        self._uploads: dict[str, _Upload] = {}

    def start_upload(self, artifact_id: str) -> _Upload:
        with self._lock:
            if artifact_id in self._uploads:
                raise failed_precondition(f"artifact {artifact_id!r} is being uploaded by another "
                                          "Write call; wait for it to end")
            upload = self._uploads[artifact_id] = _Upload(artifact_id, self.writer(artifact_id))
            return upload

    def end_upload(self, artifact_id: str) -> None:
        with self._lock:
            self._uploads.pop(artifact_id, None)

    def upload(self, artifact_id: str) -> _Upload | None:
        with self._lock:
            return self._uploads.get(artifact_id)

    def uploading(self, artifact_id: str) -> bool:
        return self.upload(artifact_id) is not None

    def writer(self, artifact_id: str) -> _BlobWriter:
        if self.directory is None:
            return _TableWriter(self.store, artifact_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        return _FileWriter(self.directory / artifact_id, durable=self.store.durable)

    def chunks(self, artifact_id: str, offset: int, limit: int) -> Iterator[bytes]:
        """The bytes from ``offset``, at most ``limit`` of them (0: all), in pieces of READ_CHUNK."""
        if self.directory is None:
            return _table_chunks(self.store, artifact_id, offset, limit)
        try:
            file = open(self.directory / artifact_id, "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise not_found("bytes of artifact", artifact_id) from None
        return _file_chunks(file, offset, limit)

    def remove_in_transaction(self, db: sqlite3.Connection, artifact_id: str) -> None:
        if self.directory is None:
            db.execute("DELETE FROM artifact_blob WHERE blob_key = ?", (artifact_id,))

    def remove_committed(self, artifact_id: str) -> None:
        if self.directory is not None:
            (self.directory / artifact_id).unlink(missing_ok=True)


_BLOBS: weakref.WeakKeyDictionary[Store, _Blobs] = weakref.WeakKeyDictionary()
_BLOBS_LOCK = threading.Lock()


def _blobs(store: Store) -> _Blobs:
    with _BLOBS_LOCK:
        blobs = _BLOBS.get(store)
        if blobs is None:
            blobs = _BLOBS[store] = _Blobs(store)
        return blobs


class _FileWriter:
    def __init__(self, final: Path, *, durable: bool) -> None:
        self.final = final
        self.durable = durable
        self.partial = final.with_name(f"{final.name}.{new_id()}.part")
        self.file = open(self.partial, "wb")  # noqa: SIM115 - closed by publish() or discard()

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def publish(self) -> None:
        if self.durable:  # the bytes reach the disk before the database says AVAILABLE
            self.file.flush()
            os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.partial, self.final)
        if self.durable:  # and so does the rename
            directory = os.open(self.final.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)

    def discard(self) -> None:
        self.file.close()
        self.partial.unlink(missing_ok=True)


class _TableWriter:
    def __init__(self, store: Store, artifact_id: str) -> None:
        self.store = store
        self.artifact_id = artifact_id
        self.key = f"{artifact_id}.{new_id()}.part"
        self.size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        with self.store.transaction() as db:
            db.execute("INSERT INTO artifact_blob (blob_key, start, data) VALUES (?, ?, ?)",
                       (self.key, self.size, data))
        self.size += len(data)

    def publish(self) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM artifact_blob WHERE blob_key = ?", (self.artifact_id,))
            db.execute("UPDATE artifact_blob SET blob_key = ? WHERE blob_key = ?", (self.artifact_id, self.key))

    def discard(self) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM artifact_blob WHERE blob_key = ?", (self.key,))


def _file_chunks(file: Any, offset: int, limit: int) -> Iterator[bytes]:
    with file:
        file.seek(offset)
        left = limit or -1
        while left:
            data = file.read(READ_CHUNK if left < 0 else min(READ_CHUNK, left))
            if not data:
                return
            left -= len(data) if left > 0 else 0
            yield data


def _table_chunks(store: Store, artifact_id: str, offset: int, limit: int) -> Iterator[bytes]:
    end = offset + limit if limit else None
    position = offset
    while end is None or position < end:
        # One stored piece per query, so a long download never holds the store's lock for long.
        with store.reading() as db:
            row = db.execute(
                "SELECT start, data FROM artifact_blob WHERE blob_key = ? AND start + length(data) > ? "
                "ORDER BY start LIMIT 1", (artifact_id, position)).fetchone()
        if row is None:
            return
        piece = bytes(row["data"])[position - row["start"]:]
        if end is not None:
            piece = piece[:end - position]
        for i in range(0, len(piece), READ_CHUNK):
            yield piece[i:i + READ_CHUNK]
        position += len(piece)


# -- artifacts and the entities they belong to ---------------------------------------------

_OWNER_WHAT = "project, experiment, model version or dataset"


def _owning_project(call: Call, entity_id: str, *, write: bool) -> str:
    """The home project of the entity an artifact belongs to, once the caller's access to it is checked.

    Each kind keeps its own rule: experiments and datasets may be read from any project
    they are linked into, and a deleted experiment is hidden.
    """
    if not entity_id:
        raise invalid_argument(f"entity_id (the {_OWNER_WHAT}) is required")
    marks = ",".join("?" * len(ARTIFACT_OWNER_KINDS))
    with call.store.reading() as db:
        row = db.execute(f"SELECT kind, project_id FROM entity WHERE id = ? AND kind IN ({marks})",
                         (entity_id, *ARTIFACT_OWNER_KINDS)).fetchone()
    if row is None:
        raise not_found(_OWNER_WHAT, entity_id)
    if row["kind"] == "experiment":
        find_experiment(call, entity_id, field="entity_id", write=write)
    elif row["kind"] == "dataset":
        find_dataset(call, entity_id, write=write, id_name="entity_id")
    elif row["kind"] == "project":
        require_via_project(call, entity_id, _OWNER_WHAT, entity_id, write=write)
        return entity_id
    else:
        require_via_project(call, row["project_id"], _OWNER_WHAT, entity_id, write=write)
    return row["project_id"]


def _artifact(call: Call, artifact_id: str, *, write: bool, id_name: str = "id") -> dict[str, Any]:
    if not artifact_id:
        raise invalid_argument(f"{id_name} (the artifact id) is required")
    row = call.store.row("artifact", artifact_id)
    if row is None:
        raise not_found("artifact", artifact_id)
    try:
        _owning_project(call, row["parent_id"], write=write)
    except RpcError as e:
        if e.code == 5:  # what the caller may not see, the artifact does not reveal
            raise not_found("artifact", artifact_id) from None
        raise
    return json.loads(row["data"])


def readable_artifact(call: Call, artifact_id: str, *, id_name: str = "id") -> dict[str, Any]:
    """An artifact the caller may read (wire JSON); NOT_FOUND otherwise."""
    return _artifact(call, artifact_id, write=False, id_name=id_name)


def writable_artifact(call: Call, artifact_id: str, *, id_name: str = "id") -> dict[str, Any]:
    """An artifact the caller may change (wire JSON); NOT_FOUND or PERMISSION_DENIED otherwise."""
    return _artifact(call, artifact_id, write=True, id_name=id_name)


@handles("storage.artifact.create_artifact")
def create_artifact(call: Call, request: Any) -> dict[str, Any]:
    given = request.artifact
    if given is None:
        raise invalid_argument("artifact is required (with entity_id and type)")
    project_id = _owning_project(call, given.entity_id, write=True)
    created = now()
    # The workspaces API's client also says what kind of entity owns it (entityType).
    artifact = {"id": new_id(), "entityId": given.entity_id, "type": given.type, "state": "EMPTY",
                "size": "0", "createdTime": created, "lastModifiedTime": created,
                "location": given.location, "mimeType": given.mime_type,
                "entityType": given.unknown_fields.get("entityType", "")}
    artifact = {k: v for k, v in artifact.items() if v != ""}
    call.store.put("artifact", artifact, project_id=project_id, parent_id=given.entity_id,
                   owner_id=call.user_id)
    return {"artifact": artifact}


@handles("storage.artifact.get_artifact")
def get_artifact(call: Call, request: Any) -> dict[str, Any]:
    return {"artifact": _artifact(call, request.id, write=False)}


def _artifacts_of(call: Call, entity_id: str) -> ListQuery:
    _owning_project(call, entity_id, write=False)
    return ListQuery(kind="artifact", message="StorageArtifact", where="e.parent_id = ?", params=[entity_id])


@handles("storage.artifact.list_entity_artifacts")
def list_entity_artifacts(call: Call, request: Any) -> dict[str, Any]:
    items, token = list_page(call, _artifacts_of(call, request.entity_id), request)
    return page_response("artifact", items, token)


@handles("storage.artifact.count_entity_artifacts", generation="workspaces")
def count_entity_artifacts(call: Call, request: dict[str, Any]) -> dict[str, Any]:
    query = _artifacts_of(call, str(request.get("entityId") or ""))
    return {"count": str(count_matching(call, query, filter=storage_filter(request)))}


@handles("storage.artifact.update_artifact")
def update_artifact(call: Call, request: Any) -> dict[str, Any]:
    given = request.artifact
    if given is None or not given.id:
        raise invalid_argument("artifact.id is required")
    with call.store.transaction() as db:
        current = _artifact(call, given.id, write=True)
        updated = apply_update(current, given, request.update_mask, ARTIFACT_UPDATABLE)
        updated["lastModifiedTime"] = now()
        if updated.get("entityId") != current["entityId"]:
            # Moving to another owner takes write access there too.
            project_id = _owning_project(call, updated.get("entityId", ""), write=True)
            db.execute("UPDATE entity SET parent_id = ?, project_id = ? WHERE kind = 'artifact' AND id = ?",
                       (updated["entityId"], project_id, given.id))
        replace_data(call.store, "artifact", updated)
    return {"artifact": updated}


@handles("storage.artifact.delete_artifact")
def delete_artifact(call: Call, request: Any) -> None:
    with call.store.transaction() as db:
        _artifact(call, request.id, write=True)
        _delete_artifacts(call.store, db, [request.id])
    remove_blobs(call.store, [request.id])


# -- ByteStream ----------------------------------------------------------------------------


class _Upload:
    """One running Write call: where its bytes go and what it has received so far."""

    def __init__(self, artifact_id: str, writer: _BlobWriter) -> None:
        self.artifact_id = artifact_id
        self.writer = writer
        self.received = 0
        self.md5 = hashlib.md5()
        self.finished = False

    def append(self, message: Message) -> None:
        if self.finished:
            raise invalid_argument("a Write message came after the one with finishWrite")
        if message.resource_name and message.resource_name != self.artifact_id:
            raise invalid_argument(f"one Write call writes one artifact: got resourceName "
                                   f"{message.resource_name!r} after {self.artifact_id!r}")
        if message.write_offset != self.received:
            raise RpcError(OUT_OF_RANGE, f"writeOffset is {message.write_offset} but {self.received} bytes "
                                         "were received so far; offsets must follow on")
        self.append_bytes(message.data)
        self.finished = message.finish_write

    def append_bytes(self, data: bytes) -> None:
        if data:
            self.writer.write(data)
            self.md5.update(data)
            self.received += len(data)


def begin_upload(call: Call, artifact_id: str) -> _Upload:
    blobs = _blobs(call.store)
    with call.store.transaction():
        artifact = _artifact(call, artifact_id, write=True, id_name="resourceName")
        if artifact.get("state") == "AVAILABLE":
            raise failed_precondition(f"artifact {artifact_id!r} has its bytes already; "
                                      "create a new artifact to upload other bytes")
        upload = blobs.start_upload(artifact_id)
        try:
            artifact.update(state="BEING_UPLOADED", lastModifiedTime=now())
            replace_data(call.store, "artifact", artifact)
        except BaseException:
            upload.writer.discard()
            blobs.end_upload(artifact_id)
            raise
    return upload


def finish_upload(store: Store, upload: _Upload) -> None:
    with store.transaction():
        artifact = store.get("artifact", upload.artifact_id)
        if artifact is None:
            raise not_found("artifact", upload.artifact_id)
        finished = now()
        artifact.update(state="AVAILABLE", size=str(upload.received), uploadedTime=finished,
                        lastModifiedTime=finished,
                        md5Digest=base64.b64encode(upload.md5.digest()).decode("ascii"))
        replace_data(store, "artifact", artifact)
        upload.writer.publish()
    _blobs(store).end_upload(upload.artifact_id)


def write_artifact_bytes(store: Store, artifact_id: str, data: bytes) -> None:
    """Give a stored artifact (state EMPTY) these bytes, as an upload would: made by the sandbox
    itself (deployment logs, batch job output), so no caller's access is checked."""
    upload = _blobs(store).start_upload(artifact_id)
    try:
        upload.append_bytes(data)
    except BaseException:
        abort_upload(store, upload)
        raise
    finish_upload(store, upload)


def delete_artifacts(store: Store, artifact_ids: Sequence[str]) -> None:
    """Delete these artifacts and their bytes (ones the sandbox made itself, such as log archives it replaces)."""
    with store.transaction() as db:
        _delete_artifacts(store, db, artifact_ids)
    remove_blobs(store, artifact_ids)


def abort_upload(store: Store, upload: _Upload) -> None:
    upload.writer.discard()
    with store.transaction():
        artifact = store.get("artifact", upload.artifact_id)
        if artifact is not None and artifact.get("state") == "BEING_UPLOADED":
            artifact.update(state="UPLOAD_FAILED", lastModifiedTime=now())
            replace_data(store, "artifact", artifact)
    _blobs(store).end_upload(upload.artifact_id)


async def _write_messages(body: Any) -> Any:
    """The decoded messages of a Write body, one per line, read as the bytes arrive."""
    cls = message_class(API.method("bytestream.bytestream.write").request)
    pending = bytearray()
    async for piece in body:
        pending += piece
        start = 0
        while (end := pending.find(b"\n", start)) >= 0:
            line = bytes(pending[start:end])
            start = end + 1
            if line.strip():
                yield _decode_line(cls, line)
        del pending[:start]
        if len(pending) > MAX_MESSAGE_BYTES:
            raise RpcError(RESOURCE_EXHAUSTED, f"a Write message is larger than {MAX_MESSAGE_BYTES} bytes; "
                                               "send the data in smaller chunks")
    if bytes(pending).strip():
        yield _decode_line(cls, bytes(pending))


def _decode_line(cls: type[Message], line: bytes) -> Message:
    raw = parse_json(line, "a Write message")
    if not isinstance(raw, dict):
        raise invalid_argument(f"a Write message must be a JSON object, got {type(raw).__name__}")
    try:
        message = cls.from_wire(raw)
    except ValueError as e:
        raise invalid_argument(f"invalid Write message: {e}") from None
    if message.unknown_fields:
        raise invalid_argument(f"invalid Write message: no field {sorted(message.unknown_fields)[0]!r}")
    return message


@handles_stream("bytestream.bytestream.write")
async def write(call: Call, request: Request) -> Response:
    body = request.stream()
    upload: _Upload | None = None
    try:
        async for message in _write_messages(body):
            if upload is None:
                upload = await run_in_threadpool(begin_upload, call, message.resource_name)
            await run_in_threadpool(upload.append, message)
        if upload is None:
            raise invalid_argument("the Write call carried no message")
        if not upload.finished:
            raise invalid_argument("the Write call ended without a message with finishWrite: true; "
                                   "nothing was kept, upload again from offset 0")
        await run_in_threadpool(finish_upload, call.store, upload)
    except ClientDisconnect:
        if upload is not None:
            abort_upload(call.store, upload)
        raise RpcError(CANCELLED, "the client went away during the upload") from None
    except BaseException as e:
        if upload is not None:
            abort_upload(call.store, upload)
        if isinstance(e, RpcError):
            await _drain(body)
        raise
    return JSONResponse({"committedSize": str(upload.received)})


async def _drain(body: Any) -> None:
    """Read the rest of a refused upload, so the client gets the error rather than a reset connection."""
    try:
        async for _ in body:
            pass
    except (ClientDisconnect, RuntimeError):
        pass


def _read_request(raw: bytes) -> Message:
    cls = message_class(API.method("bytestream.bytestream.read").request)
    body = parse_json(raw or b"{}", "the Read request")
    try:
        if not isinstance(body, dict):
            raise ValueError(f"expected a JSON object, got {type(body).__name__}")
        message = cls.from_wire(body)
    except ValueError as e:
        raise invalid_argument(f"invalid Read request: {e}") from None
    if message.unknown_fields:
        raise invalid_argument(f"invalid Read request: no field {sorted(message.unknown_fields)[0]!r}")
    return message


def _open_read(call: Call, message: Message) -> Iterator[bytes]:
    artifact = _artifact(call, message.resource_name, write=False, id_name="resourceName")
    if artifact.get("state") != "AVAILABLE":
        raise not_found(f"uploaded bytes (the artifact is {artifact.get('state', 'EMPTY')}) of artifact",
                        message.resource_name)
    size = int(artifact.get("size", 0))
    if message.read_offset < 0 or message.read_limit < 0:
        raise RpcError(OUT_OF_RANGE, "readOffset and readLimit must not be negative")
    if message.read_offset > size:
        raise RpcError(OUT_OF_RANGE, f"readOffset {message.read_offset} is past the artifact's {size} bytes")
    return _blobs(call.store).chunks(message.resource_name, message.read_offset, message.read_limit)


def _read_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    for data in chunks:
        yield b'{"result":{"data":"' + base64.b64encode(data) + b'"}}\n'


@handles_stream("bytestream.bytestream.read")
async def read(call: Call, request: Request) -> Response:
    raw = bytearray()
    async for piece in request.stream():
        raw += piece
        if len(raw) > MAX_MESSAGE_BYTES:
            raise invalid_argument("the Read request is too large")
    message = _read_request(bytes(raw))
    chunks = await run_in_threadpool(_open_read, call, message)
    return StreamingResponse(_read_lines(chunks), media_type="application/json")


@handles("bytestream.bytestream.query_write_status")
def query_write_status(call: Call, request: Any) -> dict[str, Any]:
    artifact = _artifact(call, request.resource_name, write=False, id_name="resource_name")
    upload = _blobs(call.store).upload(request.resource_name)
    if upload is not None:
        return {"committedSize": str(upload.received), "complete": False}
    if artifact.get("state") == "AVAILABLE":
        return {"committedSize": artifact.get("size", "0"), "complete": True}
    return {"committedSize": "0", "complete": False}
