"""ArtifactService and ByteStream in the sandbox, driven over loopback with the real client."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import random
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import mlops_nb
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.services.access import ROLE_EDITOR, ROLE_VIEWER
from mlops_nb.wire.errors import OutOfRange

WRITE_PATH = "/storage/google.bytestream.ByteStream/Write"

# -- helpers the other sandbox test modules use too ------------------------------------------------


def new_project(client: Any, name: str = "p") -> str:
    return client.storage.project.create_project(project={"display_name": name}).project.id


def new_experiment(client: Any, project_id: str, name: str = "e") -> str:
    return client.storage.experiment.create_experiment(project_id=project_id,
                                                       experiment={"display_name": name}).experiment.id


def uploaded_artifact(client: Any, entity_id: str, artifact_type: str = "dai/mojo_pipeline",
                      data: bytes = b"model bytes") -> str:
    """An AVAILABLE artifact of the entity; returns its id."""
    artifact_id = client.storage.artifact.create_artifact(
        artifact={"entity_id": entity_id, "type": artifact_type}).artifact.id
    client.storage.artifact.upload_artifact(artifact_id, io.BytesIO(data))
    return artifact_id


def share(owner: Any, project_id: str, user: Any, role_id: str) -> None:
    owner.storage.project.share_project(project_id=project_id, user_id=user.storage.user.who_am_i().user.id,
                                        restriction_role_id=role_id)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


# -- local helpers -----------------------------------------------------------------------------


class PatternFile(io.RawIOBase):
    """``size`` pseudo-random bytes made as they are read (never all in memory), hashed on the way."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self.left = size
        self.rng = random.Random(seed)
        self.md5 = hashlib.md5()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.rng.randbytes(size)
        self.left -= size
        self.md5.update(data)
        return data


class HashSink(io.RawIOBase):
    def __init__(self) -> None:
        self.md5 = hashlib.md5()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.md5.update(data)
        self.size += len(data)
        return len(data)


def line(artifact_id: str, offset: int, data: bytes = b"", *, finish: bool = False) -> bytes:
    message: dict[str, Any] = {"resourceName": artifact_id, "writeOffset": offset}
    if data:
        message["data"] = base64.b64encode(data).decode()
    if finish:
        message["finishWrite"] = True
    return json.dumps(message).encode() + b"\n"


def raw_write(sandbox: Sandbox, client: Any, body: bytes | Iterator[bytes]) -> requests.Response:
    return requests.post(sandbox.gateway_url + WRITE_PATH, data=body, timeout=30,
                         headers={"Authorization": f"Bearer {client.token_provider()}",
                                  "Content-Type": "application/json"})


def empty_artifact(client: Any, entity_id: str) -> str:
    return client.storage.artifact.create_artifact(
        artifact={"entity_id": entity_id, "type": "h2o3/mojo"}).artifact.id


def state_of(client: Any, artifact_id: str) -> str:
    return client.storage.artifact.get_artifact(id=artifact_id).artifact.state.value


@pytest.fixture(scope="module")
def experiment(alice: Any) -> str:
    return new_experiment(alice, new_project(alice, "artifacts"))


def leftover_parts(sandbox: Sandbox) -> list[str]:
    return [p.name for p in Path(sandbox.db + ".blobs").glob("*.part")]


# -- ArtifactService ---------------------------------------------------------------------------


def test_create_get_update_list_delete(alice: Any, experiment: str) -> None:
    created = alice.storage.artifact.create_artifact(artifact={
        "entity_id": experiment, "type": "dai/mojo_pipeline", "mime_type": "application/zip",
        "state": "AVAILABLE", "size": 99}).artifact
    assert (created.state.value, created.size, created.entity_id) == ("EMPTY", 0, experiment)
    assert alice.storage.artifact.get_artifact(id=created.id).artifact == created

    updated = alice.storage.artifact.update_artifact(
        artifact={"id": created.id, "type": "h2o3/mojo", "mime_type": "ignored"}, update_mask="type").artifact
    assert (updated.type, updated.mime_type) == ("h2o3/mojo", "application/zip")
    updated = alice.storage.artifact.update_artifact(
        artifact={"id": created.id, "location": "s3://bucket/key"}).artifact  # no mask: the fields set
    assert (updated.type, updated.location) == ("h2o3/mojo", "s3://bucket/key")
    with pytest.raises(mlops_nb.InvalidArgument, match="updatable fields: type, mime_type, location"):
        alice.storage.artifact.update_artifact(artifact={"id": created.id, "size": 5}, update_mask="size")
    with pytest.raises(mlops_nb.InvalidArgument, match="nothing to update"):
        alice.storage.artifact.update_artifact(artifact={"id": created.id})

    others = [empty_artifact(alice, experiment) for _ in range(2)]
    first = alice.storage.artifact.list_entity_artifacts(entity_id=experiment, paging={"page_size": 2})
    second = alice.storage.artifact.list_entity_artifacts(
        entity_id=experiment, paging={"page_size": 2, "page_token": first.paging.next_page_token})
    listed = [a.id for a in first.artifact + second.artifact]
    assert set(listed) >= {created.id, *others} and len(listed) == len(set(listed))
    filtered = alice.storage.artifact.list_entity_artifacts(entity_id=experiment, filter={"query": {"clause": [
        {"property_constraint": [{"property": {"field": "type"}, "operator": "EQUAL_TO",
                                  "value": {"string_value": "h2o3/mojo"}}]}]}}).artifact
    assert created.id in [a.id for a in filtered]

    alice.storage.artifact.delete_artifact(id=created.id)
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.artifact.get_artifact(id=created.id)
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.artifact.delete_artifact(id=created.id)


def test_artifacts_belong_to_projects_experiments_model_versions_and_datasets(alice: Any, bob: Any) -> None:
    project = new_project(alice, "owners")
    experiment = new_experiment(alice, project)
    version = alice.storage.registered_model_version.create_model_version(
        registered_model_version={"experiment_id": experiment}, registered_model_display_name="m",
        project_id=project).registered_model_version.id
    dataset = alice.storage.dataset.create_dataset(project_id=project, dataset={"display_name": "d"}).dataset.id
    for entity in (project, experiment, version, dataset):
        artifact = uploaded_artifact(alice, entity)
        assert [a.id for a in alice.storage.artifact.list_entity_artifacts(entity_id=entity).artifact] == [artifact]
    with pytest.raises(mlops_nb.NotFound, match="project, experiment, model version or dataset"):
        alice.storage.artifact.create_artifact(artifact={"entity_id": "no-such-entity", "type": "h2o3/mojo"})

    # The official client's way: an artifact of the project, moved to the experiment with its type.
    moving = alice.storage.artifact.list_entity_artifacts(entity_id=project).artifact[0]
    moved = alice.storage.artifact.update_artifact(
        artifact={"id": moving.id, "entity_id": experiment, "type": "python/mlflow"},
        update_mask="type,entityId").artifact
    assert (moved.entity_id, moved.type, moved.state.value) == (experiment, "python/mlflow", "AVAILABLE")
    assert alice.storage.artifact.list_entity_artifacts(entity_id=project).artifact == []
    assert moving.id in [a.id for a in alice.storage.artifact.list_entity_artifacts(entity_id=experiment).artifact]
    out = io.BytesIO()
    alice.storage.artifact.download_artifact(moving.id, out)
    assert out.getvalue() == b"model bytes"
    # Moving it into a project one may not write is refused, and changes nothing.
    bobs = new_project(bob, "bob's")
    with pytest.raises(mlops_nb.NotFound, match="project, experiment, model version or dataset"):
        alice.storage.artifact.update_artifact(artifact={"id": moving.id, "entity_id": bobs},
                                               update_mask="entityId")
    assert alice.storage.artifact.get_artifact(id=moving.id).artifact.entity_id == experiment
    with pytest.raises(mlops_nb.InvalidArgument, match="entity_id"):
        alice.storage.artifact.create_artifact(artifact={"type": "h2o3/mojo"})
    with pytest.raises(mlops_nb.InvalidArgument, match="artifact is required"):
        alice.storage.artifact.create_artifact()


def test_access_follows_the_entity_project(alice: Any, bob: Any) -> None:
    project = new_project(alice, "private")
    experiment = new_experiment(alice, project)
    artifact = uploaded_artifact(alice, experiment)
    for call in (lambda: bob.storage.artifact.get_artifact(id=artifact),
                 lambda: bob.storage.artifact.list_entity_artifacts(entity_id=experiment),
                 lambda: bob.storage.artifact.download_artifact(artifact, io.BytesIO()),
                 lambda: bob.storage.bytestream.query_write_status(resource_name=artifact),
                 lambda: bob.storage.artifact.create_artifact(artifact={"entity_id": experiment})):
        with pytest.raises(mlops_nb.NotFound) as caught:
            call()
        assert project not in str(caught.value)  # a hidden project's id does not leak
    share(alice, project, bob, ROLE_VIEWER)
    assert bob.storage.artifact.get_artifact(id=artifact).artifact.state.value == "AVAILABLE"
    out = io.BytesIO()
    bob.storage.artifact.download_artifact(artifact, out)
    assert out.getvalue() == b"model bytes"
    for call in (lambda: bob.storage.artifact.create_artifact(artifact={"entity_id": experiment}),
                 lambda: bob.storage.artifact.update_artifact(artifact={"id": artifact, "type": "x"}),
                 lambda: bob.storage.artifact.delete_artifact(id=artifact),
                 lambda: bob.storage.artifact.upload_artifact(empty_artifact(alice, experiment), io.BytesIO(b"x"))):
        with pytest.raises(mlops_nb.PermissionDenied):
            call()
    share(alice, project, bob, ROLE_EDITOR)
    uploaded_artifact(bob, experiment)


def test_artifacts_are_seen_wherever_their_entity_is(alice: Any, bob: Any) -> None:
    home = new_project(alice, "home of the experiment")
    experiment = new_experiment(alice, home)
    artifact = uploaded_artifact(alice, experiment, data=b"linked bytes")
    bobs = new_project(bob, "bob's, with alice as editor")
    share(bob, bobs, alice, ROLE_EDITOR)
    alice.storage.experiment.link_experiment_into_project(experiment_id=experiment, project_id=bobs)
    assert [a.id for a in bob.storage.artifact.list_entity_artifacts(entity_id=experiment).artifact] == [artifact]
    out = io.BytesIO()
    bob.storage.artifact.download_artifact(artifact, out)
    assert out.getvalue() == b"linked bytes"
    with pytest.raises(mlops_nb.PermissionDenied):  # changes take write access to the home project
        bob.storage.artifact.create_artifact(artifact={"entity_id": experiment, "type": "h2o3/mojo"})

    alice.storage.experiment.delete_experiment(id=experiment)
    for client in (alice, bob):
        with pytest.raises(mlops_nb.NotFound, match="artifact"):
            client.storage.artifact.get_artifact(id=artifact)
    alice.storage.experiment.recover_deleted_experiment(experiment_id=experiment)
    assert alice.storage.artifact.get_artifact(id=artifact).artifact.state.value == "AVAILABLE"


# -- ByteStream --------------------------------------------------------------------------------


def test_upload_and_download_in_small_chunks(sandbox: Sandbox, alice: Any, experiment: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    artifact = empty_artifact(alice, experiment)
    sent: list[int] = []
    response = alice.storage.artifact.upload_artifact(artifact, io.BytesIO(data), chunk_size=64 * 1024,
                                                      progress=sent.append)
    assert response.committed_size == len(data) == sent[-1] and len(sent) == 49
    stored = alice.storage.artifact.get_artifact(id=artifact).artifact
    assert (stored.state.value, stored.size) == ("AVAILABLE", len(data))
    assert stored.md5_digest == hashlib.md5(data).digest()
    assert stored.uploaded_time is not None and stored.uploaded_time >= stored.created_time
    assert (Path(sandbox.db + ".blobs") / artifact).stat().st_size == len(data)
    status = alice.storage.bytestream.query_write_status(resource_name=artifact)
    assert (status.committed_size, status.complete) == (len(data), True)

    out = io.BytesIO()
    assert alice.storage.artifact.download_artifact(artifact, out) == len(data)
    assert out.getvalue() == data
    pieces = list(alice.storage.bytestream.read(resource_name=artifact, read_offset=100_000, read_limit=200_000))
    assert b"".join(p.data for p in pieces) == data[100_000:300_000]
    assert max(len(p.data) for p in pieces) <= 64 * 1024
    tail = list(alice.storage.bytestream.read(resource_name=artifact, read_offset=len(data) - 5))
    assert b"".join(p.data for p in tail) == data[-5:]
    assert list(alice.storage.bytestream.read(resource_name=artifact, read_offset=len(data))) == []
    with pytest.raises(OutOfRange):
        list(alice.storage.bytestream.read(resource_name=artifact, read_offset=len(data) + 1))
    with pytest.raises(OutOfRange):
        list(alice.storage.bytestream.read(resource_name=artifact, read_limit=-1))

    alice.storage.artifact.delete_artifact(id=artifact)
    assert not (Path(sandbox.db + ".blobs") / artifact).exists()


def test_an_empty_file_is_a_valid_upload(alice: Any, experiment: str) -> None:
    artifact = empty_artifact(alice, experiment)
    assert alice.storage.artifact.upload_artifact(artifact, io.BytesIO(b"")).committed_size == 0
    stored = alice.storage.artifact.get_artifact(id=artifact).artifact
    assert (stored.state.value, stored.md5_digest) == ("AVAILABLE", hashlib.md5(b"").digest())
    assert alice.storage.artifact.download_artifact(artifact, io.BytesIO()) == 0


def test_memory_stays_flat_for_a_20_mb_upload_and_download(alice: Any, experiment: str) -> None:
    size = 20 * 1024 * 1024
    artifact = empty_artifact(alice, experiment)
    source, sink = PatternFile(size), HashSink()
    tracemalloc.start()
    try:
        alice.storage.artifact.upload_artifact(artifact, source, chunk_size=64 * 1024)
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        alice.storage.artifact.download_artifact(artifact, sink)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Client and server share this process: neither side may hold the file (20 MiB, 27 MiB as base64).
    assert upload_peak < 4 * 1024 * 1024, upload_peak
    assert download_peak < 4 * 1024 * 1024, download_peak
    stored = alice.storage.artifact.get_artifact(id=artifact).artifact
    assert (stored.size, stored.md5_digest) == (size, source.md5.digest())
    assert (sink.size, sink.md5.digest()) == (size, source.md5.digest())


def test_a_bad_offset_fails_the_upload_and_a_new_one_can_follow(sandbox: Sandbox, alice: Any,
                                                                 experiment: str) -> None:
    artifact = empty_artifact(alice, experiment)
    body = line(artifact, 0, b"abc") + line(artifact, 2, b"def") + line(artifact, 5, finish=True)
    response = raw_write(sandbox, alice, body)
    assert response.status_code == 400 and response.json()["code"] == 11
    assert "writeOffset is 2 but 3 bytes" in response.json()["message"]
    assert state_of(alice, artifact) == "UPLOAD_FAILED"
    status = alice.storage.bytestream.query_write_status(resource_name=artifact)
    assert (status.committed_size, status.complete) == (0, False)
    with pytest.raises(mlops_nb.NotFound, match="UPLOAD_FAILED"):
        alice.storage.artifact.download_artifact(artifact, io.BytesIO())
    assert leftover_parts(sandbox) == []

    alice.storage.artifact.upload_artifact(artifact, io.BytesIO(b"abcdef"), chunk_size=4)
    out = io.BytesIO()
    alice.storage.artifact.download_artifact(artifact, out)
    assert out.getvalue() == b"abcdef"
    with pytest.raises(mlops_nb.FailedPrecondition, match="create a new artifact"):
        alice.storage.artifact.upload_artifact(artifact, io.BytesIO(b"again"))
    assert state_of(alice, artifact) == "AVAILABLE"


@pytest.mark.parametrize(("body", "code", "message"), [
    (lambda a: b"", 3, "carried no message"),
    (lambda a: line(a, 0, b"abc"), 3, "without a message with finishWrite"),
    (lambda a: line(a, 0, b"abc", finish=True) + line(a, 3, b"d"), 3, "after the one with finishWrite"),
    (lambda a: b"{not json\n", 3, "not valid JSON"),
    (lambda a: b"[1, 2]\n", 3, "must be a JSON object"),
    (lambda a: json.dumps({"resourceName": a, "data": 12}).encode(), 3, "invalid Write message"),
    (lambda a: json.dumps({"resourceName": a, "colour": "red"}).encode(), 3, "no field 'colour'"),
    (lambda a: line("", 0, b"x", finish=True), 3, "resourceName"),
    (lambda a: line(a, 0, b"x") + line("other", 1, finish=True), 3, "one Write call writes one artifact"),
    (lambda a: line("no-such-artifact", 0, finish=True), 5, "not found"),
    (lambda a: b'{"resourceName": "' + a.encode() + b'", "data": "' + b"A" * (9 * 1024 * 1024), 8,
     "larger than"),
])
def test_malformed_uploads_are_refused_cleanly(sandbox: Sandbox, alice: Any, experiment: str, body: Any, code: int,
                                               message: str) -> None:
    artifact = empty_artifact(alice, experiment)
    response = raw_write(sandbox, alice, body(artifact))
    assert response.json()["code"] == code and message in response.json()["message"]
    assert response.status_code < 500
    assert state_of(alice, artifact) in ("EMPTY", "UPLOAD_FAILED")
    assert leftover_parts(sandbox) == []


def test_status_and_concurrency_while_an_upload_runs(sandbox: Sandbox, alice: Any, experiment: str) -> None:
    artifact = empty_artifact(alice, experiment)
    gate = threading.Event()

    def body() -> Iterator[bytes]:
        yield line(artifact, 0, b"x" * 1000)
        gate.wait(10)
        yield line(artifact, 1000, b"y" * 10, finish=True)

    result: dict[str, Any] = {}
    uploader = threading.Thread(target=lambda: result.update(response=raw_write(sandbox, alice, body())))
    uploader.start()
    try:
        wait_until(lambda: alice.storage.bytestream.query_write_status(resource_name=artifact).committed_size == 1000)
        assert not alice.storage.bytestream.query_write_status(resource_name=artifact).complete
        assert state_of(alice, artifact) == "BEING_UPLOADED"
        with pytest.raises(mlops_nb.FailedPrecondition, match="another Write call"):
            alice.storage.artifact.upload_artifact(artifact, io.BytesIO(b"other"))
        with pytest.raises(mlops_nb.FailedPrecondition, match="being uploaded"):
            alice.storage.artifact.delete_artifact(id=artifact)
    finally:
        gate.set()
        uploader.join(10)
    assert result["response"].json() == {"committedSize": "1010"}
    assert state_of(alice, artifact) == "AVAILABLE"


def test_a_client_that_goes_away_leaves_upload_failed(sandbox: Sandbox, alice: Any, experiment: str) -> None:
    artifact = empty_artifact(alice, experiment)
    first = line(artifact, 0, b"partial")
    with socket.create_connection((sandbox.host, sandbox.port), timeout=10) as conn:
        conn.sendall(f"POST {WRITE_PATH} HTTP/1.1\r\nHost: {sandbox.host}\r\n"
                     f"Authorization: Bearer {alice.token_provider()}\r\nContent-Type: application/json\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode() + f"{len(first):x}\r\n".encode() + first + b"\r\n")
        wait_until(lambda: state_of(alice, artifact) == "BEING_UPLOADED")
    wait_until(lambda: state_of(alice, artifact) == "UPLOAD_FAILED")
    assert leftover_parts(sandbox) == []
    alice.storage.artifact.upload_artifact(artifact, io.BytesIO(b"complete"))
    assert state_of(alice, artifact) == "AVAILABLE"


def test_read_and_status_of_what_is_not_there(sandbox: Sandbox, alice: Any, experiment: str) -> None:
    lost = uploaded_artifact(alice, experiment)
    (Path(sandbox.db + ".blobs") / lost).unlink()
    with pytest.raises(mlops_nb.NotFound, match="bytes of artifact"):
        alice.storage.artifact.download_artifact(lost, io.BytesIO())
    artifact = empty_artifact(alice, experiment)
    with pytest.raises(mlops_nb.NotFound, match="EMPTY"):
        alice.storage.artifact.download_artifact(artifact, io.BytesIO())
    status = alice.storage.bytestream.query_write_status(resource_name=artifact)
    assert (status.committed_size, status.complete) == (0, False)
    with pytest.raises(mlops_nb.NotFound):
        alice.storage.artifact.download_artifact("no-such-artifact", io.BytesIO())
    with pytest.raises(mlops_nb.InvalidArgument, match="resourceName"):
        list(alice.storage.bytestream.read(resource_name=""))
    with pytest.raises(mlops_nb.InvalidArgument, match="resource_name"):
        alice.storage.bytestream.query_write_status(resource_name="")


def test_bytes_live_in_a_table_for_an_in_memory_store() -> None:
    with Sandbox(db=":memory:", data="empty") as sb, sb.client("alice") as alice:
        experiment = new_experiment(alice, new_project(alice))
        data = os.urandom(300_000)
        artifact = empty_artifact(alice, experiment)
        alice.storage.artifact.upload_artifact(artifact, io.BytesIO(data), chunk_size=50_000)
        out = io.BytesIO()
        alice.storage.artifact.download_artifact(artifact, out)
        assert out.getvalue() == data
        pieces = alice.storage.bytestream.read(resource_name=artifact, read_offset=49_990, read_limit=100_020)
        assert b"".join(p.data for p in pieces) == data[49_990:150_010]
        with sb.store.reading() as db:
            assert db.execute("SELECT count(*) FROM artifact_blob").fetchone()[0] == 6

        failed = empty_artifact(alice, experiment)
        assert raw_write(sb, alice, line(failed, 0, b"abc") + line(failed, 1, b"d")).status_code == 400
        alice.storage.artifact.delete_artifact(id=artifact)
        with sb.store.reading() as db:
            assert db.execute("SELECT count(*) FROM artifact_blob").fetchone()[0] == 0


def test_bytestream_upload_file_and_download_file_as_in_the_legacy_client(alice: Any) -> None:
    project = new_project(alice, "bytestream names")
    artifact = alice.storage.artifact.create_artifact(artifact={"entity_id": project}).artifact.id
    written = alice.storage.bytestream.upload_file(artifact, io.BytesIO(b"x" * 70_000), chunk_size=32 * 1024)
    assert written.committed_size == 70_000
    out = io.BytesIO()
    assert alice.storage.bytestream.download_file(artifact, out) is None
    assert out.getvalue() == b"x" * 70_000
