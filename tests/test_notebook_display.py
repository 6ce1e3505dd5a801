"""Cards and tables: golden HTML and text, escaping, IPython displays, an executed notebook, a browser.

Golden files live in ``tests/golden/``. After an intended change of a card or of the
static table, refresh them with::

    MLOPS_NB_UPDATE_GOLDEN=1 python -m pytest tests/test_notebook_display.py

and review the diff before committing it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import mlops_nb
from mlops_nb.api import API, description
from mlops_nb.notebook import display
from mlops_nb.notebook.display import (
    card_html,
    card_text,
    frame_html,
    has_card,
    install_ipython_formatters,
    log_html,
    shown_above,
)
from mlops_nb.notebook.frames import FRAME_ATTR, LOG_ATTR, frame_from_wire
from mlops_nb.notebook.settings import settings
from mlops_nb.sandbox import Sandbox
from mlops_nb.wire.messages import Message, message_class
from tests.chromium import require_chromium
from tests.test_notebook_frames import make_deployments

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE_GOLDEN = os.environ.get("MLOPS_NB_UPDATE_GOLDEN") == "1"
NOW = datetime(2024, 5, 4, 12, 0, tzinfo=timezone.utc)
USERNAMES = {"u-alice": "alice", "u-bob": "bob"}
HOSTILE = '<script>alert("x")</script>&'


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"no golden file {path}; create it with MLOPS_NB_UPDATE_GOLDEN=1"
    assert actual == path.read_text(encoding="utf-8"), (
        f"{name} changed; if intended, refresh with MLOPS_NB_UPDATE_GOLDEN=1 and review the diff")


@pytest.fixture
def restore_settings() -> Iterator[None]:
    saved = {name: getattr(settings, name) for name in settings.trait_names()}
    yield
    for name, value in saved.items():
        setattr(settings, name, value)


# -- samples: entities as a server sends them ---------------------------------------------------

_COMPOSITION = {"experimentId": "e-1", "artifactId": "a-1", "deployableArtifactTypeName": "dai_mojo_pipeline",
                "artifactProcessorName": "dai_mojo_pipeline_extractor", "runtimeName": "dai_mojo_runtime"}

SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "user": ("StorageUser", {"id": "u-alice", "username": "alice", "primaryEmail": "alice@example.com",
                             "createdTime": "2023-03-01T08:00:00Z"}),
    "project": ("StorageProject", {
        "id": "p-1", "displayName": "Churn", "ownerId": "u-alice", "description": "Who leaves, and why.",
        "createdTime": "2024-05-01T12:00:00Z", "lastModifiedTime": "2024-05-04T10:30:00Z"}),
    "project_unknown_owner": ("StorageProject", {"id": "p-2", "displayName": "Other", "ownerId": "u-carol",
                                                 "createdTime": "2024-05-04T11:59:30Z"}),
    "project_info": ("StorageProjectInfo", {
        "project": {"id": "p-1", "displayName": "Churn", "ownerId": "u-alice", "createdTime": "2024-05-01T12:00:00Z"},
        "registeredModelCount": 2, "shareCount": 1, "experimentCount": "12",
        "sharedUser": [{"id": "u-bob", "username": "bob"}], "registeredModelVersionCount": 3}),
    "experiment": ("StorageExperiment", {
        "id": "e-1", "displayName": "gbm 1", "ownerId": "u-bob", "status": "FINISHED",
        "parameters": {"targetColumn": "churned", "trainingDatasetId": "d-1"},
        "statistics": {"trainingDuration": "125s"}, "tag": [{"id": "t-1", "displayName": "best"}],
        "createdTime": "2024-04-04T12:00:00Z"}),
    "experiment_info": ("StorageExperimentInfo", {
        "experiment": {"id": "e-1", "displayName": "gbm 1", "status": "TRAINING"},
        "modelInfo": {"modelId": "m-1", "modelName": "churn", "modelVersionNumber": "2"}}),
    "registered_model": ("StorageRegisteredModel", {
        "id": "m-1", "displayName": "churn", "projectId": "p-1", "createdBy": "u-alice", "updatedBy": "u-bob",
        "createdTime": "2024-01-01T00:00:00Z", "updatedTime": "2024-05-03T12:00:00Z"}),
    "model_version": ("StorageRegisteredModelVersion", {
        "id": "v-1", "registeredModelId": "m-1", "experimentId": "e-1", "version": 2, "status": "ACTIVE",
        "createdBy": "u-alice", "createdTime": "2024-05-04T09:00:00Z"}),
    "artifact": ("StorageArtifact", {
        "id": "a-1", "entityId": "e-1", "type": "dai/mojo_pipeline", "state": "AVAILABLE", "size": "123456789",
        "md5Digest": "AQID", "mimeType": "application/zip", "createdTime": "2024-05-04T11:00:00Z",
        "uploadedTime": "2024-05-04T11:01:00Z"}),
    "storage_deployment": ("StorageDeployment", {
        "id": "d-1", "projectId": "p-1", "experimentId": "e-1", "type": "SPLIT_TRAFFIC",
        "secondaryScorer": [{"experimentId": "e-2", "fraction": 0.25}], "ownerId": "u-alice",
        "deploymentEnvironmentId": "env-1", "createdTime": "2024-05-02T12:00:00Z"}),
    "deployment_single": ("DeployDeployment", {
        "id": "d-1", "displayName": "churn scorer", "projectId": "p-1", "description": "production",
        "singleDeployment": {"deploymentComposition": _COMPOSITION},
        "userInfo": {"ownerId": "u-alice"}, "createdTime": "2024-05-02T12:00:00Z"}),
    "deployment_shadow": ("DeployDeployment", {
        "id": "d-2", "displayName": "shadow test", "shadowDeployment": {
            "primaryElement": {"deploymentComposition": _COMPOSITION},
            "secondaryElement": {"deploymentComposition": {"experimentId": "e-2", "runtimeName": "h2o3_mojo_runtime"}}},
        "userInfo": {"ownerId": "u-zed", "ownerName": "zed"}}),
    "deployment_split": ("DeployDeployment", {
        "id": "d-3", "displayName": "a/b", "splitDeployment": {"splitElements": [
            {"deploymentComposition": _COMPOSITION, "weight": 70},
            {"deploymentComposition": {"experimentId": "e-2", "runtimeName": "mojo_runtime_shapley_all"},
             "weight": 30}]}}),
    "deployment_failed": ("DeployDeployment", {
        "id": "d-4", "displayName": "protected", "singleDeployment": {"deploymentComposition": _COMPOSITION},
        "security": {"passphrase": {"hash": "open-sesame-4711", "passphraseHashType": "PASSPHRASE_HASH_TYPE_PLAINTEXT"}},
        "userInfo": {"ownerId": "u-alice"}}),
    "status_failed": ("DeployDeploymentStatus", {
        "deploymentId": "d-4", "state": "FAILED", "lastModifiedTime": "2024-05-04T11:59:30Z",
        "message": "missing dependency: No module named 'xgboost'"}),
    "status_healthy": ("DeployDeploymentStatus", {
        "deploymentId": "d-1", "state": "HEALTHY", "lastModifiedTime": "2024-05-04T11:55:00Z",
        "scorer": {"score": {"url": "https://model.example.com/d-1/model/score"},
                   "sampleRequest": {"url": "https://model.example.com/d-1/model/sample_request"}}}),
    "status_unhealthy": ("DeployDeploymentStatus", {"deploymentId": "d-2", "state": "UNHEALTY",
                                                    "message": "scorer keeps restarting"}),
    "status_launching": ("DeployDeploymentStatus", {"deploymentId": "d-3", "state": "LAUNCHING"}),
}


def sample(name: str) -> Message:
    message, wire = SAMPLES[name]
    return message_class(message).from_wire(wire)


def seen() -> dict[str, Any]:
    """What cards would otherwise take from the live clients."""
    return {"now": NOW, "usernames": USERNAMES,
            "statuses": {"d-1": sample("status_healthy"), "d-4": sample("status_failed")},
            "names": {"e-1": "gradient boosting", "d-1": "credit-default"}}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_card_golden(name: str) -> None:
    message = sample(name)
    html = card_html(message, **seen())
    assert html is not None
    check_golden(f"cards/{name}.html", html + "\n")
    check_golden(f"cards/{name}.txt", card_text(message, **seen()) + "\n")


def test_deployment_cards_show_state_traffic_and_reason_but_never_the_passphrase() -> None:
    failed = card_html(sample("deployment_failed"), **seen())
    text = card_text(sample("deployment_failed"), **seen())
    assert "open-sesame-4711" not in failed + text + repr(sample("deployment_failed"))
    assert "scoring needs: passphrase" in text and "failed just now" in text
    assert "reason: missing dependency: No module named &#x27;xgboost&#x27;" not in text
    assert "reason: missing dependency: No module named 'xgboost'" in text and "#c62828" in failed
    healthy = card_text(sample("deployment_single"), **seen())
    assert "state: healthy for 5 minutes" in healthy and "artifact: dai_mojo_pipeline a-1" in healthy
    split = card_html(sample("deployment_split"), **seen())
    assert split.count('width:70%') == 1 and split.count('width:30%') == 1
    assert "traffic: e-1 answers every request; e-2 scores a copy of each" in card_text(sample("deployment_shadow"))


def test_cards_show_the_right_values() -> None:
    project = card_html(sample("project"), now=NOW, usernames=USERNAMES)
    assert "Churn" in project and "Who leaves, and why." in project
    assert ">alice<" in project and 'title="u-alice"' in project  # owner as username
    assert "3 days ago" in project and "2024-05-01 12:00:00 UTC" in project and "1 hour ago" in project
    unknown = card_text(sample("project_unknown_owner"), now=NOW, usernames=USERNAMES)
    assert "owner: u-carol" in unknown and "just now" in unknown  # unknown owner: its id
    info = card_text(sample("project_info"), now=NOW, usernames=USERNAMES)
    assert "experiments: 12" in info and "registered models: 2" in info and "shared with: bob" in info
    status = card_html(sample("status_healthy"), now=NOW)
    assert '<a href="https://model.example.com/d-1/model/score"' in status and ">healthy<" in status
    assert "#2e7d32" in status  # green
    assert "#c62828" in card_html(sample("status_unhealthy"))  # red
    assert "unhealthy" in card_text(sample("status_unhealthy"))
    assert "#ef6c00" in card_html(sample("status_launching"))  # amber
    split = card_text(sample("deployment_split"), now=NOW)
    assert "type: split" in split and "e-1 (weight 70); e-2 (weight 30)" in split
    assert "H2O.ai MOJO scorer (dai_mojo_runtime)" in split and "DAI MOJO Scorer (Shapley all)" in split
    assert "type: shadow" in card_text(sample("deployment_shadow"))
    assert "owner: zed" in card_text(sample("deployment_shadow"))
    single = card_text(sample("deployment_single"), **seen())
    assert single.startswith("Deployment: churn scorer [healthy] (d-1)")
    assert "type: single model" in single and "owner: alice" in single and "models: gradient boosting" in single
    # Names where they are known, the id in a tooltip; the id itself where no name is known.
    named = card_html(sample("deployment_split"), **seen())
    assert '<span title="e-1">gradient boosting</span>' in named and '<span title="e-1">gradient boosting 70%' in named
    assert ">e-2</code>" in named and '<span title="e-2">e-2 30%' in named
    status = card_text(sample("status_healthy"), **seen())
    assert status.startswith("Deployment status: credit-default [healthy] (d-1)")
    assert "scoring URL: https://model.example.com/d-1/model/score" in single and "created: 2 days ago" in single
    assert '<a href="https://model.example.com/d-1/model/score"' in card_html(sample("deployment_single"), **seen())
    assert "[" not in card_text(sample("deployment_single"), statuses={}).splitlines()[0]  # no status seen
    artifact = card_text(sample("artifact"), now=NOW)
    assert "117.7 MiB (123,456,789 bytes)" in artifact and "deploys as: dai_mojo_pipeline" in artifact
    user = card_text(sample("user"), now=NOW)
    assert user.startswith("User: alice (u-alice)") and "alice@example.com" in user and "joined: 1 year ago" in user


def _hostile(message_name: str, depth: int = 0, generation: str = "legacy") -> dict[str, Any]:
    """Wire JSON with every string (and every nested message) of ``message_name`` filled with HOSTILE."""
    api = description(generation)
    wire: dict[str, Any] = {}
    for f in api.messages[message_name]:
        if f.map:
            continue
        if f.type == "string":
            value: Any = HOSTILE
        elif api.is_message(f.type) and depth < 4:
            value = _hostile(f.type, depth + 1, generation)
        else:
            continue
        wire[f.json] = [value] if f.repeated else value
    return wire


# Every carded message of each generation (the storage ones of the workspaces generation too).
_CARDED = [(generation, name) for generation in ("legacy", "workspaces") for name in sorted(display._CARDS)
           if name in description(generation).messages]


@pytest.mark.parametrize(("generation", "message_name"), _CARDED)
def test_every_card_escapes_server_values(generation: str, message_name: str) -> None:
    message = message_class(message_name, generation).from_wire(_hostile(message_name, generation=generation))
    html = card_html(message, now=NOW)
    assert html is not None
    assert "<script" not in html and "&lt;script&gt;" in html
    assert 'href="javascript' not in html.lower() and "&amp;" in html


def test_only_web_links_become_anchors() -> None:
    status = message_class("DeployDeploymentStatus").from_wire(
        {"deploymentId": "d", "scorer": {"score": {"url": "javascript:alert(1)"},
                                         "capabilities": {"url": 'https://x.example/"onmouseover="alert(1)'}}})
    html = card_html(status)
    assert "<a href=\"javascript" not in html and "javascript:alert(1)" in html
    assert '&quot;onmouseover=&quot;' in html and '"onmouseover="' not in html


def test_single_entity_responses_show_their_entity() -> None:
    project = sample("project")
    response = mlops_nb.StorageGetProjectResponse(project=project)
    assert has_card("StorageGetProjectResponse") and has_card("StorageWhoAmIResponse")
    assert not has_card("StorageListProjectsResponse")
    assert response._repr_html_() == project._repr_html_() is not None
    assert card_text(response, now=NOW) == card_text(project, now=NOW)
    empty = mlops_nb.StorageGetProjectResponse()
    assert empty._repr_html_() is None and card_text(empty) == repr(empty)


def test_deployment_cards_from_the_sandbox(sandbox: Sandbox, alice: Any) -> None:
    project_id, single, _ = make_deployments(sandbox, alice, "display deployments")
    deployment = mlops_nb.find_deployment(alice, project_id, "single")
    assert single not in alice.deployment_statuses and "[" not in card_text(deployment).splitlines()[0]
    statuses = alice.deployer.deployment_status.list_deployment_statuses(project_id=project_id)
    assert single in alice.deployment_statuses and len(statuses) == 2
    html = deployment._repr_html_()
    assert ">healthy<" in html and f"/deployments/{single}/model/score" in html and "single model" in html
    status = alice.deployer.deployment_status.get_deployment_status(deployment_id=single)
    assert ">healthy<" in status._repr_html_() and "scoring URL" in card_text(status)


def test_cards_of_entities_from_the_sandbox(alice: Any) -> None:
    me = alice.storage.user.who_am_i()
    assert f">{me.user.username}<" in me._repr_html_() and me.user.id in me._repr_html_()
    project = alice.storage.project.create_project(project={"display_name": HOSTILE, "description": "sandboxed"})
    html = project._repr_html_()
    assert "&lt;script&gt;" in html and "<script" not in html and "sandboxed" in html
    assert f'title="{me.user.id}">alice<' in html  # the client saw alice in who_am_i
    assert "just now" in html
    listed = alice.storage.project.list_projects()
    assert listed.project[0]._repr_html_().count("mlops-nb-card") == 1


def test_displays_work_outside_jupyter() -> None:
    code = (
        "import mlops_nb as m\n"
        "from IPython.display import display\n"
        "from mlops_nb.notebook.display import card_text\n"
        "p = m.StorageProject(id='p-1', display_name='churn', owner_id='u-1')\n"
        "display(p)\n"
        "print(card_text(p))\n"
        "print(m.DeployDeploymentStatus(deployment_id='d', state='HEALTHY')._repr_html_() is not None)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("StorageProject(id='p-1'")
    assert lines[1:3] == ["Project: churn (p-1)", "  owner: u-1"]
    assert lines[-1] == "True"


# -- tables --------------------------------------------------------------------------------------

PROJECTS = API.method("storage.project.list_projects")


def project_frame(count: int, name: str = "p") -> Any:
    rows = [{"id": f"p-{i:03d}", "displayName": f"{name}{i}", "ownerId": "u-alice",
             "createdTime": f"2024-05-{1 + i % 28:02d}T12:00:00Z"} for i in range(count)]
    rows[0]["description"] = "first"
    return frame_from_wire(PROJECTS, {"project": rows})


def test_static_table_golden(restore_settings: None) -> None:
    settings.interactive_tables = False
    html = frame_html(project_frame(3))
    assert "<script" not in html
    check_golden("frames/projects_static.html", html + "\n")


def test_interactive_table_has_a_static_fallback(restore_settings: None) -> None:
    html = frame_html(project_frame(30), include_bundle=False)
    static, interactive = html.split('<div class="mlops-nb-interactive" hidden="hidden">')
    assert '<div class="mlops-nb-static">' in static and "p-019" in static and "p-020" not in static
    assert "10 more rows in the interactive table" in static
    assert "new ITable" in interactive and "p-029" in interactive
    assert "document.getElementById" in interactive and "table.dataTable" in interactive
    assert "https://" not in html.replace("https://itables.org", "")  # nothing fetched from a CDN
    assert "StorageProject: 30 rows × 6 columns" in html


def test_itables_is_pinned_to_the_major_version_whose_private_hooks_the_tables_use() -> None:
    from importlib.metadata import requires, version

    pin = next(r for r in requires("mlops_nb") or [] if r.startswith("itables"))
    assert "<3" in pin and version("itables").startswith("2.")
    assert display._itables_hooks() is not None


def test_an_itables_without_its_private_hooks_gives_static_tables_and_says_so(
        restore_settings: None, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stands in for a future itables that renamed its private helpers: no such release exists to install.
    import itables.javascript

    monkeypatch.delattr(itables.javascript, "_itables_ready_event")
    display._itables_hooks.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match=r"itables 2\.[\d.]+ lacks what interactive tables need"):
            html = frame_html(project_frame(30))
        assert "<script" not in html and "p-029" in html and "mlops-nb-static-table" in html
    finally:
        display._itables_hooks.cache_clear()


def test_every_table_carries_the_bundle_which_a_page_loads_once() -> None:
    first, second = frame_html(project_frame(2)), frame_html(project_frame(2))
    # Each table works in whichever page shows it (a reload, a second tab, an export): it brings the
    # bundle, gzipped, and a loader that uses the copy already in the page if there is one.
    for html in (first, second):
        assert "DecompressionStream" in html and "if (window[name]) return;" in html
        assert 200_000 < len(html) < 400_000
    bundle = first[first.index("<script>(() => {\n  const name"):first.index("</script>", first.index("const name"))]
    assert bundle in second  # byte for byte: saved notebooks do not change when re-run
    assert "DecompressionStream" not in frame_html(project_frame(2), include_bundle=False)


def test_small_tables_show_search_and_long_ones_page_controls() -> None:
    small, long = frame_html(project_frame(3), include_bundle=False), frame_html(project_frame(11), include_bundle=False)
    layout = re.compile(r'"layout": (\{[^}]*\})')
    assert json.loads(layout.search(small).group(1)) == {
        "topStart": None, "topEnd": "search", "bottomStart": "info", "bottomEnd": None}
    assert json.loads(layout.search(long).group(1)) == {
        "topStart": "pageLength", "topEnd": "search", "bottomStart": "info", "bottomEnd": "paging"}


def deployment_frame(count: int = 3) -> Any:
    """A deployer list frame as %mlops deployments shows it: 55 fields plus state, message and project."""
    rows = [{"id": f"d-{i}", "displayName": f"deployment {i}", "projectId": "p-1",
             "createdTime": "2024-05-01T12:00:00Z", "lastModifiedTime": "2024-05-02T12:00:00Z",
             "singleDeployment": {"deploymentComposition": {**_COMPOSITION, "runtimeName": f"runtime_{i}"}}}
            for i in range(count)]
    frame = frame_from_wire(API.method("deployer.deployment.list_project_deployments"), {"deployment": rows})
    extra = pd.DataFrame({"state": ["HEALTHY"] * count, "state_message": ["ready"] * count,
                          "project": ["Churn"] * count}, dtype="string")
    wide = pd.concat([frame[["id", "display_name"]], extra, frame.drop(columns=["id", "display_name"])], axis=1)
    wide.attrs.update(frame.attrs)
    return wide


def _header(html: str) -> list[str]:
    static = html.split('<div class="mlops-nb-static">')[1]
    return [h.replace("<wbr>", "") for h in re.findall(r"<th[^>]*>(.*?)</th>", static.split("</thead>")[0])]


def test_wide_frames_lead_with_what_people_look_for(restore_settings: None) -> None:
    frame = deployment_frame()
    assert len(frame.columns) == 58
    html = frame_html(frame, include_bundle=False)
    assert _header(html) == [
        "display_name", "state", "state_message", "project",
        "single_deployment_deployment_composition_runtime_name", "created_time", "last_modified_time", "id",
        "project_id", "deployment_environment_id"]
    assert "DeployDeployment: 3 rows × 58 columns, 10 shown" in html
    assert '48 more columns not shown: mlops_nb.show_table(frame, columns="all")' in html.replace("&quot;", '"')
    assert "%config MLOps.max_columns = 0" in html
    assert "single_<wbr>deployment_<wbr>deployment_<wbr>composition_<wbr>runtime_<wbr>name" in html
    assert len(frame.columns) == 58  # the frame keeps them all
    settings.interactive_tables = False
    check_golden("frames/deployments_static.html", frame_html(frame) + "\n")
    settings.interactive_tables = True

    settings.max_columns = 4
    assert _header(frame_html(frame, include_bundle=False)) == ["display_name", "state", "state_message", "project"]
    settings.max_columns = 0
    every = frame_html(frame, include_bundle=False)
    assert len(_header(every)) == 58 and "not shown" not in every
    assert len(_header(frame_html(frame, columns=None, include_bundle=False))) == 58

    settings.max_columns = 10
    assert len(_header(frame_html(frame, columns="all", include_bundle=False))) == 58
    picked = frame_html(frame, columns=["state", "id"], include_bundle=False)
    assert _header(picked) == ["state", "id"] and "2 shown" in picked and "56 more columns" in picked
    narrow = frame[["project", "display_name", "state"]]  # a person's own choice keeps its order
    assert _header(frame_html(narrow, include_bundle=False)) == ["project", "display_name", "state"]
    with pytest.raises(KeyError, match="no column 'nope'"):
        frame_html(frame, columns=["nope"])
    with pytest.raises(ValueError, match='columns must be "all"'):
        frame_html(frame, columns="everything")


def test_table_values_are_escaped(restore_settings: None) -> None:
    frame = project_frame(3, name=HOSTILE)
    for interactive in (True, False):
        settings.interactive_tables = interactive
        html = frame_html(frame, include_bundle=False)
        assert '<script>alert("x")' not in html
        assert "&lt;script&gt;" in html


def test_max_rows_caps_the_rows_shown(restore_settings: None) -> None:
    settings.max_rows = 5
    frame = project_frame(30)
    html = frame_html(frame, include_bundle=False)
    assert "30 rows × 6 columns, first 5 shown" in html and "p-004" in html and "p-005" not in html
    settings.interactive_tables = False
    static = frame_html(frame)
    assert static.count("</tr>") == 6 and len(frame) == 30  # header and 5 rows; the frame keeps them all


def _shell() -> Any:
    from IPython.core.formatters import DisplayFormatter

    # A display formatter of our own, so no global InteractiveShell outlives the test.
    return types.SimpleNamespace(display_formatter=DisplayFormatter())


def test_ipython_displays() -> None:
    shell = _shell()
    assert install_ipython_formatters(shell) and install_ipython_formatters(shell)  # twice: no double wrapping
    frame = project_frame(12)
    for shown in (frame, frame.head(3), frame[frame["display_name"] == "p1"]):
        data, _ = shell.display_formatter.format(shown)
        assert "mlops-nb-frame" in data["text/html"] and "new ITable" in data["text/html"]
    plain = pd.DataFrame({"a": [1, 2]})
    data, _ = shell.display_formatter.format(plain)
    assert data["text/html"] == plain._repr_html_() and "mlops-nb" not in data["text/html"]
    assert "mlops-nb" not in frame.to_html()  # to_html stays pandas'
    data, _ = shell.display_formatter.format(sample("project"))
    assert data["text/plain"].startswith("Project: Churn (p-1)") and "mlops-nb-card" in data["text/html"]


# -- a real notebook -----------------------------------------------------------------------------

NOTEBOOK_CELLS = [
    "import pandas as pd\nimport mlops_nb as mlops\nfrom mlops_nb import sandbox\n"
    "sb = sandbox.start(db=':memory:', data='empty')\nc = sb.client('alice')\n"
    "for i in range(25):\n    c.storage.project.create_project(project={'display_name': f'project {i}'})",
    "projects = c.storage.project.list_projects()\nprojects",
    "projects[projects.display_name == 'project 1']",
    "pd.DataFrame({'a': [1, 2]})",
    "c.storage.user.who_am_i()",
    "mlops.list_all(c.storage.project.list_projects, page_size=10)",
    "mlops.show_table(projects, columns=['display_name', 'id'])\nprint('after')",
    "sb.stop()",
]


@pytest.fixture(scope="module")
def executed_notebook() -> Any:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    return notebook


def _html_outputs(cell: Any) -> list[str]:
    return [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]


def test_notebook_shows_interactive_tables_with_a_static_fallback(executed_notebook: Any) -> None:
    cells = executed_notebook.cells
    (listed,) = _html_outputs(cells[1])
    assert "DecompressionStream" in listed  # the bundle, offline, in every table
    assert "new ITable" in listed and '<div class="mlops-nb-static">' in listed
    assert 'class="mlops-nb-interactive" hidden="hidden"' in listed and "project 24" in listed
    (derived,) = _html_outputs(cells[2])
    assert "new ITable" in derived and "DecompressionStream" in derived and "project 1<" in derived
    (plain,) = _html_outputs(cells[3])
    assert "mlops-nb" not in plain and 'class="dataframe"' in plain
    (card,) = _html_outputs(cells[4])
    assert "mlops-nb-card" in card and ">alice<" in card
    text = [o["data"]["text/plain"] for o in cells[4].outputs if "text/plain" in o.get("data", {})]
    assert text[0].startswith("User: alice (")
    every = cells[5].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in every)  # progress bar
    assert "StorageProject: 25 rows" in _html_outputs(cells[5])[-1]
    (chosen,) = _html_outputs(cells[6])
    assert "2 shown" in chosen and "4 more columns not shown" in chosen
    assert cells[6].outputs[-1]["text"] == "after\n"  # shown where it is called, not as the cell's value


# -- a real browser ------------------------------------------------------------------------------


def _chromium() -> str:
    path = require_chromium()
    pytest.importorskip("playwright.sync_api")
    return path


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _offline(page: Any) -> None:
    """Nothing but the page's own file loads (an HTML export asks CDNs for require.js and MathJax)."""
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else route.abort())


@pytest.mark.browser
def test_browser_swaps_in_the_interactive_table_and_keeps_the_fallback(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    page_of = "<!doctype html><html><head><meta charset='utf-8'></head><body>{}</body></html>".format
    two_tables = tmp_path / "two_tables.html"
    two_tables.write_text(page_of(frame_html(project_frame(30)) + frame_html(project_frame(4, name="second"))),
                          encoding="utf-8")
    without_bundle = tmp_path / "without_bundle.html"
    without_bundle.write_text(page_of(frame_html(project_frame(4), include_bundle=False)), encoding="utf-8")
    # The %mlops runtimes table in an output area as wide as JupyterLab's at 1024 pixels.
    runtimes = tmp_path / "runtimes.html"
    runtimes.write_text(page_of(f"<div style='width:900px;font-size:13px'>"
                                f"{frame_html(catalogs_frame())}</div>"), encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(two_tables.as_uri())
            page.wait_for_function("document.querySelectorAll('table.dataTable').length == 2", timeout=20_000)
            page.wait_for_function("[...document.querySelectorAll('.mlops-nb-static')].every(e => e.hidden)")
            assert page.locator(".mlops-nb-interactive:visible").count() == 2
            assert re.search(r"Showing 1 to 10 of 30", page.inner_text("body"))
            # Both tables carry the bundle; the page loads it once (one stylesheet, one module).
            assert page.evaluate("document.head.querySelectorAll('style').length") == 1
            assert errors == []

            page = browser.new_page()
            page.goto(without_bundle.as_uri())
            page.wait_for_timeout(1000)
            assert page.is_visible(".mlops-nb-static") and not page.is_visible(".mlops-nb-interactive")

            page = browser.new_page(java_script_enabled=False)
            page.goto(two_tables.as_uri())
            assert page.locator(".mlops-nb-static:visible").count() == 2
            assert page.locator(".mlops-nb-interactive:visible").count() == 0

            page = browser.new_page(viewport={"width": 1024, "height": 768})
            page.goto(runtimes.as_uri())
            table = page.locator("table.dataTable")
            table.wait_for(timeout=20_000)
            header = table.locator("thead th").filter(has_text="model_description")
            box, frame = header.bounding_box(), page.locator(".mlops-nb-frame").bounding_box()
            assert box is not None and frame is not None
            assert box["x"] >= frame["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
            assert page.locator(".dt-layout-table > .dt-layout-cell").evaluate("e => e.scrollWidth <= e.clientWidth + 1")
            longest = table.locator("tbody td").filter(has_text="supports all Shapley contribution types")  # cut at 120 characters
            line = float(longest.evaluate("e => parseFloat(getComputedStyle(e).lineHeight) || 16"))
            assert longest.bounding_box()["height"] > 1.5 * line  # wrapped, not clipped
            page.screenshot(path=str(tmp_path / "runtimes.png"))
        finally:
            browser.close()


def catalogs_frame() -> Any:
    """The table ``%mlops runtimes dai/mojo_pipeline`` shows."""
    table = mlops_nb.runtimes_for("dai/mojo_pipeline")
    table.attrs[FRAME_ATTR] = "runtimes"
    return table


@pytest.mark.browser
def test_an_html_export_has_interactive_tables_and_static_ones_without_scripts(
        executed_notebook: Any, tmp_path: Path) -> None:
    from nbconvert import HTMLExporter
    from playwright.sync_api import expect, sync_playwright

    chromium = _chromium()
    body, _ = HTMLExporter().from_notebook_node(executed_notebook)
    exported = tmp_path / "exported.html"
    exported.write_text(body, encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            _offline(page)
            page.goto(exported.as_uri())
            frames = page.locator(".mlops-nb-frame")
            assert frames.count() == 4  # the listed, derived, every-page and show_table tables
            page.wait_for_function("document.querySelectorAll('.mlops-nb-frame table.dataTable').length == 4",
                                   timeout=30_000)
            assert page.locator(".mlops-nb-static:visible").count() == 0
            search = frames.first.locator(".dt-search input")
            search.fill('"project 24"')  # quoted: the phrase (DataTables' smart search splits words)
            expect(frames.first.locator("table.dataTable tbody tr")).to_have_count(1)

            page = browser.new_page(java_script_enabled=False)
            page.goto(exported.as_uri())
            assert page.locator(".mlops-nb-static:visible").count() == 4
            assert page.locator(".mlops-nb-interactive:visible").count() == 0
            assert "project 19" in page.locator(".mlops-nb-static").first.inner_text()
        finally:
            browser.close()


def _log_frame(messages: list[str]) -> pd.DataFrame:
    logs = pd.DataFrame({"time": pd.to_datetime([f"2024-05-04T12:00:0{i}Z" for i in range(len(messages))], utc=True),
                         "source": ["lifecycle"] * len(messages), "message": messages})
    logs.attrs[LOG_ATTR] = True
    return logs


LONG_LOG_MESSAGE = ("scorer random forest#0: loading the model with MLflow's loader took 2.4 s; "
                    "the first request waits for it " * 4).strip()


def test_logs_show_whole_messages_newest_last(restore_settings: None) -> None:
    shell = _shell()
    install_ipython_formatters(shell)
    logs = _log_frame(["started", LONG_LOG_MESSAGE, "HEALTHY <ready>"])
    shown = shell.display_formatter.format(logs.tail(2))[0]["text/html"]  # .tail keeps the marker
    assert escape(LONG_LOG_MESSAGE) in shown and "started" not in shown
    assert shown.index("loading the model") < shown.index("HEALTHY &lt;ready&gt;")  # newest last
    assert "2 log lines, oldest first, times in UTC" in shown
    settings.max_rows = 1
    assert "1 earlier line not shown" in log_html(logs.tail(2))


@pytest.mark.browser
def test_logs_read_left_aligned_and_wrapped_in_a_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    # JupyterLab's own rule for output tables right-aligns cells; the log's must win over it.
    page_html = ("<!doctype html><html><head><meta charset='utf-8'><style>td{text-align:right;white-space:nowrap}"
                 "</style></head><body><div style='width:600px'>{}</div></body></html>").replace(
        "{}", log_html(_log_frame(["started", LONG_LOG_MESSAGE])))
    page_file = tmp_path / "log.html"
    page_file.write_text(page_html, encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            message = page.locator("td.mlops-nb-log-message").nth(1)
            assert message.inner_text() == LONG_LOG_MESSAGE
            assert message.evaluate("cell => getComputedStyle(cell).textAlign") == "left"
            short = page.locator("td.mlops-nb-log-message").first.bounding_box()
            long = message.bounding_box()
            assert short is not None and long is not None
            assert long["height"] > 2 * short["height"]  # wrapped onto several lines
            assert long["x"] + long["width"] <= 600 + 8  # within its output, not off to the side
        finally:
            browser.close()


def test_a_card_shown_above_is_not_shown_again_once() -> None:
    status = sample("status_healthy")
    shown_above(status)  # as wait_for_healthy does once its live display ends as the card
    assert card_html(status, **seen()) == ""
    assert "mlops-nb-card" in (card_html(status, **seen()) or "")  # shown again when asked again


def test_a_card_shown_above_shows_in_a_later_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    from IPython.core.events import EventManager, available_events

    # IPython's own event manager on a stand-in shell: the test session has one real shell
    # (tests/test_magics.py's), and a second one would clash with it.
    shell = types.SimpleNamespace(events=EventManager(None, available_events))
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)
    status = sample("status_healthy")
    shown_above(status)  # in the cell that waited and kept the status (status = wait_for_healthy(...))
    shell.events.trigger("post_run_cell", None)  # that cell ends
    assert "mlops-nb-card" in (card_html(status, **seen()) or "")  # shown in a later cell: its card


def test_long_text_is_cut_in_tables_not_in_frames() -> None:
    frame = project_frame(3)
    frame["description"] = pd.array(["x " * 200, "short", None], dtype="string")
    shown = frame_html(frame, columns=["display_name", "description"])
    assert ("x " * 200)[:119] + "…" in shown and "x " * 61 not in shown
    assert frame["description"].iloc[0] == "x " * 200  # the frame keeps it whole
    assert "mlops-nb-prose" in shown  # a column wide enough for a few lines of it
