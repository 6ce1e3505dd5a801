"""The API description is whole and consistent, and drives the messages and the client."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import mlops_nb as mlops
from mlops_nb.api import API, CATALOGS, ApiDescription
from mlops_nb.wire import client as wire_client
from mlops_nb.wire import messages
from tests.wheels import download_wheel, regenerate

SCALARS = {"string", "int32", "int64", "double", "bool", "bytes", "timestamp", "object"}


def test_the_generator_reproduces_the_committed_description(tmp_path: Path) -> None:
    wheel = download_wheel("h2o-mlops==1.0.1", tmp_path / "wheel")
    produced = regenerate("regen_api_description.py", [wheel], tmp_path / "out.json")
    committed = Path(__file__).resolve().parent.parent / "mlops_nb" / "api" / "description.json"
    assert produced == committed.read_text(encoding="utf-8")


def test_counts_match_the_legacy_package() -> None:
    # h2o-mlops 1.0.1: 121 methods; 350 exported message and enum names (21 enum classes).
    assert len(API.methods) == 121
    assert len(API.messages) + len(API.enums) == 350
    per_server = {s: sum(len(x.methods) for x in API.services_of(s)) for s in API.servers}
    assert per_server == {"storage": 90, "deployer": 19, "ingest": 2, "model_monitoring": 7, "bytestream": 3}


def assert_every_referenced_type_exists(api: ApiDescription) -> None:
    """Each field, request and response type is a scalar, a message or an enum of ``api``."""
    for name, fields in api.messages.items():
        for f in fields:
            assert f.type in SCALARS or f.type in api.messages or f.type in api.enums, (name, f)
    for m in api.methods:
        assert m.request in (None, "object") or m.request in api.messages, m
        assert m.response == "object" or m.response in api.messages, m


def test_every_referenced_type_exists() -> None:
    assert_every_referenced_type_exists(API)
    for m in API.methods:
        if m.verb == "GET":
            assert m.request is None
            for p in m.path_params:
                assert "{" + p.wire + "}" in m.path


def test_paths_and_qualified_names_are_unique() -> None:
    routes = [(m.verb, m.full_path) for m in API.methods]
    assert len(set(routes)) == len(routes)
    names = [m.qualified_name for m in API.methods]
    assert len(set(names)) == len(names)


def _offline_client() -> mlops.wire.Client:
    """A client to look at, not to call: nothing listens at its URL, so its generation is given (finding it
    would ask the gateway)."""
    return mlops.wire.Client("http://127.0.0.1:9", lambda: "unused", generation="legacy")


def test_every_method_resolves_from_the_client() -> None:
    client = _offline_client()
    for m in API.methods:
        server = getattr(client, m.service.server)
        entity = getattr(server, m.service.entity)
        bound = getattr(entity, m.python)
        assert callable(bound)
        assert m.full_path in bound.__doc__
        inspect.signature(bound)  # a real signature, for Shift-Tab


@pytest.mark.parametrize(
    ("path", "entity"),
    [
        ("storage.project", "ProjectService"),
        ("storage.registered_model_version", "RegisteredModelVersionService"),
        ("storage.bytestream", "ByteStream"),
        ("deployer.deployment_status", "DeploymentStatusService"),
        ("deployer.profiling", "DeploymentProfilingService"),
        ("ingest.model", "ModelIngest"),
        ("model_monitoring.monitoring_service", "ModelMonitoringService"),
    ],
)
def test_legacy_entity_names(path: str, entity: str) -> None:
    client = _offline_client()
    server, name = path.split(".")
    assert getattr(getattr(client, server), name).service.name == entity


def test_every_message_and_enum_is_importable_from_the_package() -> None:
    for name in [*API.messages, *API.enums]:
        cls = getattr(mlops, name)
        assert cls is getattr(messages, name)
        assert cls.__module__ == "mlops_nb.wire.messages"
        assert name in mlops.__all__


def test_classes_are_built_once_at_module_level() -> None:
    assert wire_client.StorageProjectService is wire_client.entity_class("storage", "project")
    a = _offline_client()
    b = _offline_client()
    assert type(a.storage.project) is type(b.storage.project)


def test_service_classes_are_named_apart_from_the_message_classes() -> None:
    services = {type(getattr(getattr(client, server), entity)).__name__
                for client in [_offline_client()]
                for server in API.servers for entity in dir(getattr(client, server))}
    assert "StorageProjectService" in services and len(services) == len(API.services)
    assert services.isdisjoint(messages.all_message_classes())
    assert services.isdisjoint(messages.all_enum_classes())


def test_a_misspelt_method_or_entity_gets_the_nearest_names() -> None:
    client = _offline_client()
    with pytest.raises(AttributeError, match=r"storage.project \(StorageProjectService\) has no method 'list_project'; "
                                             r"did you mean list_projects"):
        client.storage.project.list_project()
    with pytest.raises(AttributeError, match="the storage server has no entity 'projects'; did you mean project?"):
        client.storage.projects  # noqa: B018
    with pytest.raises(AttributeError, match="has no method 'fly'; it has .*get_project.*list_projects"):
        client.storage.project.fly  # noqa: B018
    assert not hasattr(client.storage.project, "_repr_html_")  # display probes still see a plain missing name


def test_enums_keep_the_real_values() -> None:
    assert "UNHEALTY" in API.enums["DeployDeploymentState"]
    assert mlops.DeployDeploymentState.UNHEALTY == "UNHEALTY"


def test_int64_and_bytes_fields_are_marked() -> None:
    fields = {f.name: f.type for f in API.messages["StorageArtifact"]}
    assert fields["size"] == "int64"
    assert fields["md5_digest"] == "bytes"
    paging = {f.name: f.type for f in API.messages["StoragePagingRequest"]}
    assert paging == {"page_size": "int32", "page_token": "bytes"}


def test_rest_methods_carry_path_and_query_parameters() -> None:
    m = API.method("model_monitoring.monitoring_service.get_model_drift_metrics")
    assert m.verb == "GET"
    assert [p.wire for p in m.path_params] == ["deploymentId", "modelId"]
    assert "startDateTime" in [p.wire for p in m.query_params]


def test_catalogs_hold_the_seed_tables() -> None:
    assert {"artifact_type": "dai/mojo_pipeline", "deployable_artifact_type_name": "dai_mojo_pipeline",
            "artifact_processor_name": "dai_mojo_pipeline_extractor", "model_type": "dai_mojo"} in CATALOGS.artifacts
    assert len(CATALOGS.artifacts) == 7
    assert len(CATALOGS.runtimes) == 21


def test_read_only_methods_are_the_reads() -> None:
    read_only = {m.qualified_name for m in API.methods if m.read_only}
    assert len(read_only) == 65
    # Every REST GET, and the reads the client retries by name; nothing that changes state.
    assert all(m.read_only for m in API.methods if m.verb == "GET")
    assert {"storage.user.who_am_i", "storage.user.batch_get_users", "storage.version.get_version",
            "bytestream.bytestream.read", "storage.experiment.is_experiment_registered",
            "model_monitoring.monitoring_service.export_metric"} <= read_only
    writes = {"create_", "update_", "delete_", "batch_delete_", "link_", "unlink_", "tag_", "untag_", "share_",
              "unshare_", "transfer_", "deploy", "undeploy", "write", "recover_", "batch_recover_", "discover_"}
    for m in API.methods:
        assert m.read_only != m.python.startswith(tuple(writes)), m.qualified_name
