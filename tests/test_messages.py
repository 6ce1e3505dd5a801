"""Messages: construction, validation, the proto3 JSON mapping, and the niceties of real classes."""

from __future__ import annotations

import copy
import inspect
import pickle
from datetime import datetime, timedelta, timezone

import pytest

import mlops_nb as mlops


def test_construct_with_keywords_and_nested_dicts_in_either_spelling() -> None:
    a = mlops.StorageListProjectsRequest(paging={"page_size": 10}, sorting={"property": [
        {"property": {"field": "display_name"}, "order": "DESCENDING"}]})
    b = mlops.StorageListProjectsRequest(paging=mlops.StoragePagingRequest(pageSize=10), sorting={"property": [
        mlops.StorageSortProperty(_property=mlops.StorageProperty(field="display_name"),
                                  order=mlops.StorageOrder.DESCENDING)]})
    assert a == b
    assert a.to_wire() == {"paging": {"pageSize": 10},
                           "sorting": {"property": [{"property": {"field": "display_name"}, "order": "DESCENDING"}]}}


def test_unknown_field_names_the_message_and_the_valid_fields() -> None:
    with pytest.raises(TypeError) as e:
        mlops.StorageProject(name="x")
    text = str(e.value)
    assert "StorageProject" in text and "'name'" in text and "display_name" in text


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"display_name": 3}, TypeError, "StorageProject.display_name: expected str, got int"),
        ({"created_time": "yesterday"}, TypeError, "not an RFC 3339 timestamp"),
    ],
)
def test_wrong_types_are_refused(kwargs: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        mlops.StorageProject(**kwargs)


def test_enum_values_are_checked_on_input() -> None:
    with pytest.raises(ValueError, match="is not one of .*AVAILABLE"):
        mlops.StorageArtifact(state="READY")
    assert mlops.StorageArtifact(state="AVAILABLE").state is mlops.ArtifactArtifactState.AVAILABLE


def test_nested_error_names_the_inner_message() -> None:
    with pytest.raises(TypeError, match="StoragePagingRequest.page_size: expected int"):
        mlops.StorageListProjectsRequest(paging={"page_size": "ten"})


def test_wire_conversion_of_every_scalar_kind() -> None:
    wire = {
        "id": "a1", "entityId": "e1", "type": "dai/mojo_pipeline", "state": "AVAILABLE",
        "size": "1234567890123", "md5Digest": "1B2M2Y8AsgTpgAmY7PhCfg==",
        "createdTime": "2022-07-12T16:41:13.127190Z", "uploadedTime": "2022-07-12T18:41:13+02:00",
    }
    artifact = mlops.StorageArtifact.from_wire(wire)
    assert artifact.size == 1234567890123
    assert artifact.md5_digest == bytes.fromhex("d41d8cd98f00b204e9800998ecf8427e")
    assert artifact.created_time == datetime(2022, 7, 12, 16, 41, 13, 127190, tzinfo=timezone.utc)
    assert artifact.uploaded_time == datetime(2022, 7, 12, 16, 41, 13, tzinfo=timezone.utc)
    out = artifact.to_wire()
    assert out["size"] == "1234567890123"
    assert out["md5Digest"] == "1B2M2Y8AsgTpgAmY7PhCfg=="
    assert out["createdTime"] == "2022-07-12T16:41:13.12719Z"
    assert out["uploadedTime"] == "2022-07-12T16:41:13Z"
    assert mlops.StorageArtifact.from_wire(out) == artifact


def test_missing_fields_read_as_defaults() -> None:
    empty = mlops.StorageArtifact.from_wire({})
    assert (empty.id, empty.size, empty.md5_digest) == ("", 0, b"")
    assert empty.state is mlops.ArtifactArtifactState.UNKNOWN_ARTIFACT_STATE
    assert empty.created_time is None
    response = mlops.StorageListProjectsResponse.from_wire({})
    assert response.project == [] and response.paging is None and response.user_project_count == 0


def test_unknown_fields_from_a_newer_server_are_kept() -> None:
    project = mlops.StorageProject.from_wire({"id": "p", "futureField": {"x": 1}})
    assert project.unknown_fields == {"futureField": {"x": 1}}
    assert project.to_wire() == {"id": "p", "futureField": {"x": 1}}


def test_unknown_enum_value_from_the_server_is_not_fatal() -> None:
    status = mlops.DeployDeploymentStatus.from_wire({"state": "HIBERNATING"})
    assert status.state == "HIBERNATING"


def test_bad_wire_value_names_field_and_json_name() -> None:
    with pytest.raises(ValueError, match=r"StorageArtifact.size \(size\)"):
        mlops.StorageArtifact.from_wire({"size": "big"})


def test_to_dict_gives_plain_python_data() -> None:
    request = mlops.StorageListProjectsRequest(paging={"page_size": 5},
                                               filter={"query": {"clause": [{"property_constraint": [
                                                   {"property": {"field": "display_name"}, "operator": "CONTAINS",
                                                    "value": {"string_value": "x"}}]}]}})
    plain = request.to_dict()
    assert plain["paging"] == {"page_size": 5}
    constraint = plain["filter"]["query"]["clause"][0]["property_constraint"][0]
    assert constraint["operator"] == "CONTAINS" and type(constraint["operator"]) is str


def test_repr_is_short_and_readable() -> None:
    project = mlops.StorageProject(id="p1", display_name="Churn " * 40)
    text = repr(project)
    assert text.startswith("StorageProject(id='p1', display_name='Churn")
    assert len(text) < 120


def test_signature_doc_and_dir_show_the_fields() -> None:
    sig = inspect.signature(mlops.StorageProject)
    assert list(sig.parameters)[:3] == ["id", "display_name", "owner_id"]
    assert "display_name: str" in mlops.StorageProject.__doc__
    assert "display_name" in dir(mlops.StorageProject())


def test_messages_pickle_and_copy() -> None:
    request = mlops.StorageListProjectsRequest(paging={"page_size": 5, "page_token": b"\x00\x01"})
    assert pickle.loads(pickle.dumps(request)) == request
    assert copy.deepcopy(request) == request
    assert pickle.loads(pickle.dumps(mlops.DeployDeploymentState.HEALTHY)) is mlops.DeployDeploymentState.HEALTHY


def test_naive_datetimes_are_taken_as_utc() -> None:
    project = mlops.StorageProject(created_time=datetime(2024, 1, 2, 3, 4, 5))
    assert project.to_wire()["createdTime"] == "2024-01-02T03:04:05Z"
    other = mlops.StorageProject(created_time=datetime(2024, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1))))
    assert other == project


def test_repeated_fields_can_be_appended_to() -> None:
    request = mlops.StorageBatchGetUsersRequest()
    request.i_ds.append("u1")
    assert request.to_wire() == {"IDs": ["u1"]}  # the JSON name is as the legacy client spells it


def test_attribute_assignment_is_validated() -> None:
    project = mlops.StorageProject()
    project.display_name = "ok"
    with pytest.raises(TypeError):
        project.display_name = 5
    with pytest.raises(TypeError, match="has no field 'nme'"):
        project.nme = "x"
    with pytest.raises(AttributeError, match="has no field 'nme'"):
        _ = project.nme


def test_bytes_fields_take_bytes_or_base64_text_as_the_legacy_client_did() -> None:
    assert mlops.StoragePagingRequest(page_token="YWJj").page_token == b"abc"
    assert mlops.StoragePagingRequest(page_token=b"abc").to_wire() == {"pageToken": "YWJj"}
    with pytest.raises(TypeError, match="base64 text"):
        mlops.StoragePagingRequest(page_token="not base64!")
