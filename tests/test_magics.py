"""``%mlops`` and ``%%mlops`` in a real IPython shell, against a real sandbox over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from IPython.core.completer import provisionalcompleter
from IPython.core.error import UsageError
from IPython.core.interactiveshell import ExecutionResult, InteractiveShell
from IPython.testing.globalipapp import get_ipython
from IPython.utils.capture import capture_output

import mlops_nb
import mlops_nb.sandbox
from mlops_nb.notebook import completion, session
from mlops_nb.notebook.login import LoginForm
from mlops_nb.notebook.magics import CommandFailed, MLOps
from mlops_nb.notebook.settings import settings
from mlops_nb.sandbox import Sandbox
from tests.capture import CaptureServer

LIST_PROJECTS = "/storage/ai.h2o.storage.ProjectService/ListProjects"


@pytest.fixture(scope="module")
def ip() -> Iterator[InteractiveShell]:
    # globalipapp starts its shell once per process and hands it only to the first caller.
    shell = get_ipython() or InteractiveShell.instance()
    shell.run_line_magic("load_ext", "mlops_nb")
    yield shell
    shell.run_line_magic("unload_ext", "mlops_nb")


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("magics") / "s.sqlite3"), data="demo") as sandbox:
        sandbox.wait_for_deployments()  # the demo's scorers load after start
        yield sandbox


@pytest.fixture
def alice(sb: Sandbox) -> Iterator[Any]:
    client = sb.client("alice")
    session.set_current_client(client, client.storage.user.who_am_i().user)
    yield client
    session.logout()


@pytest.fixture(autouse=True)
def settings_restored(ip: InteractiveShell) -> Iterator[None]:
    """Undo what a test's %config did: to the shell's config (later MLOps instances read it) and the settings."""
    saved = {name: getattr(settings, name) for name in settings.trait_names()}
    config = ip.config.copy()
    yield
    ip.config = config
    for name, value in saved.items():
        setattr(settings, name, value)


def run(ip: InteractiveShell, cell: str) -> ExecutionResult:
    return ip.run_cell(cell, store_history=False)


def output_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    captured = capsys.readouterr()
    return [line for line in (captured.out + captured.err).splitlines() if line.strip()]


# -- loading, help, usage errors -------------------------------------------------------------------------


def test_load_ext_registers_the_line_and_cell_magic(ip: InteractiveShell) -> None:
    magics = ip.magics_manager.magics
    assert "mlops" in magics["line"] and "mlops" in magics["cell"]
    assert any(isinstance(c, MLOps) for c in ip.configurables)


def test_help_lists_every_command_and_each_command_has_help(ip: InteractiveShell,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert run(ip, "%mlops --help").success
    text = capsys.readouterr().out
    for command in ("login", "logout", "whoami", "projects", "experiments", "models", "deployments", "users",
                    "artifact-types", "runtimes", "version", "sandbox", "call"):
        assert command in text
        result = run(ip, f"%mlops {command} --help")
        assert result.success and result.result is None
        assert f"usage: %mlops {command}" in capsys.readouterr().out
    assert run(ip, "%%mlops --help\n{}").success
    assert "usage: %%mlops" in capsys.readouterr().out


@pytest.mark.parametrize(("line", "words"), [
    ("%mlops projx", "did you mean 'projects'"),
    ("%mlops projects --limit many", "expected a whole number"),
    ("%mlops projects --limit 5 --all", "not allowed with argument"),
    ("%mlops experiments", "the following arguments are required: PROJECT"),
    ("%mlops projects -o 1x", "not a Python variable name"),
    ("%mlops call storage.project.lisst_projects", "did you mean storage.project.list_projects"),
    ("%mlops call storage.project.list_projects paging", "expected FIELD=VALUE"),
    ("%mlops projects 'unclosed", "cannot split"),
])
def test_a_usage_error_is_one_line(ip: InteractiveShell, capsys: pytest.CaptureFixture[str], line: str,
                                   words: str) -> None:
    result = run(ip, line)
    assert isinstance(result.error_in_exec, UsageError)
    lines = output_lines(capsys)
    assert len(lines) == 1 and lines[0].startswith("UsageError: ") and words in lines[0]


def test_without_a_login_a_command_says_how_to_log_in_in_one_line(ip: InteractiveShell,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    session.logout()
    for command in ("projects", "whoami", "experiments X", "deployments", "version", "users",
                    "call storage.user.who_am_i"):
        result = run(ip, f"%mlops {command}")
        assert isinstance(result.error_in_exec, CommandFailed)
        lines = output_lines(capsys)
        assert len(lines) == 1, lines
        assert "%mlops login" in lines[0] and "%mlops sandbox" in lines[0]


# -- list commands ---------------------------------------------------------------------------------------


def test_projects_returns_a_dataframe(ip: InteractiveShell, alice: Any) -> None:
    assert run(ip, "df = %mlops projects").success
    frame = ip.user_ns["df"]
    assert isinstance(frame, pd.DataFrame)
    assert set(frame["display_name"]) == {"Credit risk", "Customer churn"}


def test_list_results_show_as_list_tables_and_other_frames_are_untouched(ip: InteractiveShell, alice: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    settings.interactive_tables = True
    frame = run(ip, "%mlops projects").result[["id", "display_name"]]  # derived frames too
    # A terminal shell turns its HTML formatter off; a notebook's is on.
    html_formatter = ip.display_formatter.formatters["text/html"]
    monkeypatch.setattr(html_formatter, "enabled", True)
    html = html_formatter(frame)
    assert "mlops-nb-frame" in html and "Credit risk" in html
    plain = pd.DataFrame({"a": [1, 2]})
    assert html_formatter(plain) == plain._repr_html_()


def test_experiments_and_models_of_a_project_by_name_or_id(ip: InteractiveShell, alice: Any) -> None:
    by_name = run(ip, "%mlops experiments Credit risk").result
    quoted = run(ip, "%mlops experiments 'Credit risk'").result
    project_id = mlops_nb.find_project(alice, "Credit risk").id
    by_id = run(ip, f"%mlops experiments {project_id}").result
    assert len(by_name) == 3 and list(by_name["id"]) == list(quoted["id"]) == list(by_id["id"])
    models = run(ip, "%mlops models 'Credit risk'").result
    assert set(models["display_name"]) == {"credit-default", "credit-default-h2o"}


def test_an_unknown_project_is_one_line(ip: InteractiveShell, alice: Any,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    result = run(ip, "%mlops experiments Credit")
    assert isinstance(result.error_in_exec, CommandFailed)
    lines = output_lines(capsys)
    assert len(lines) == 1 and "NameNotFound" in lines[0] and "Credit risk" in lines[0]


def test_sort_filter_limit_all_and_output_variable(ip: InteractiveShell, alice: Any,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    descending = run(ip, "%mlops experiments 'Credit risk' --sort -display_name").result
    assert list(descending["display_name"]) == sorted(descending["display_name"], reverse=True)
    ascending = run(ip, "%mlops experiments 'Credit risk' --sort display_name").result
    assert list(ascending["display_name"]) == sorted(ascending["display_name"])
    one = run(ip, "%mlops experiments 'Credit risk' --filter 'display_name=GBM tuned'").result
    assert list(one["display_name"]) == ["GBM tuned"]
    not_it = run(ip, "%mlops experiments 'Credit risk' --filter 'display_name!=GBM tuned'").result
    assert len(not_it) == 2 and "GBM tuned" not in set(not_it["display_name"])
    contains = run(ip, "%mlops projects --filter display_name~CREDIT").result
    assert list(contains["display_name"]) == ["Credit risk"]
    capsys.readouterr()
    limited = run(ip, "%mlops experiments 'Credit risk' --limit 2 -o first_two").result
    assert len(limited) == 2 and ip.user_ns["first_two"] is limited
    assert "--all lists every one" in capsys.readouterr().out
    assert len(run(ip, "%mlops experiments 'Credit risk' --all").result) == 3
    assert "--all" not in capsys.readouterr().out


def test_filter_values_are_typed_as_their_field(ip: InteractiveShell, alice: Any,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    projects = run(ip, "%mlops projects").result
    created = projects["created_time"][0].isoformat()
    same_time = run(ip, f"%mlops projects --filter created_time={created}").result
    assert list(same_time["id"]) == [projects["id"][0]]
    capsys.readouterr()
    result = run(ip, "%mlops projects --filter created_time=yesterday")
    assert isinstance(result.error_in_exec, UsageError)
    assert "does not fit created_time (timestamp)" in output_lines(capsys)[0]


def test_the_python_api_takes_the_same_filter_and_sort(ip: InteractiveShell, alice: Any) -> None:
    """What --filter and --sort give, code gets from list_all and all_deployments with where= and sort=."""
    line = run(ip, "%mlops experiments 'Credit risk' --filter 'display_name!=GBM tuned' --sort -display_name").result
    project = mlops_nb.find_project(alice, "Credit risk")
    code = mlops_nb.list_all(alice.storage.experiment.list_experiments, project_id=project.id,
                             where=["display_name!=GBM tuned"], sort="-display_name")
    assert list(code["id"]) == list(line["id"]) and len(code) == 2
    assert list(mlops_nb.list_all(alice.storage.project.list_projects, where="display_name~CREDIT")["display_name"]) \
        == ["Credit risk"]
    failing = mlops_nb.all_deployments(alice, where=["project!=Customer churn", "state~fail"], sort="display_name")
    assert list(failing["display_name"]) == list(run(ip, "%mlops deployments --filter 'project!=Customer churn' "
                                                         "--filter state~fail --sort display_name").result["display_name"])
    with pytest.raises(ValueError, match="does not fit created_time"):
        mlops_nb.list_all(alice.storage.project.list_projects, where="created_time=yesterday")
    with pytest.raises(ValueError, match="a condition is FIELD=VALUE"):
        mlops_nb.list_all(alice.storage.project.list_projects, where="display_name")
    with pytest.raises(ValueError, match="deployer.environment.list_environments cannot filter"):
        mlops_nb.list_all(alice.deployer.environment.list_environments, where="display_name=x")


def test_max_rows_is_the_default_limit(ip: InteractiveShell, alice: Any) -> None:
    run(ip, "%config MLOps.max_rows = 1")
    assert len(run(ip, "%mlops projects").result) == 1


def test_deployments_of_every_project_with_their_state(ip: InteractiveShell, alice: Any) -> None:
    frame = run(ip, "%mlops deployments").result
    assert list(frame.columns[:5]) == ["id", "display_name", "state", "state_message", "project"]
    assert set(frame["project"]) == {"Credit risk", "Customer churn"}
    assert set(frame["state"]) == {"HEALTHY", "FAILED"}
    assert frame["state"].notna().all()
    one_project = run(ip, "%mlops deployments Customer churn").result
    assert set(one_project["project"]) == {"Customer churn"} and len(one_project) == 1
    sorted_all = run(ip, "%mlops deployments --sort display_name --limit 3").result
    assert len(sorted_all) == 3
    assert list(sorted_all["display_name"]) == sorted(frame["display_name"])[:3]


def test_deployments_filter_on_the_columns_the_command_adds(ip: InteractiveShell, alice: Any) -> None:
    # state and project are not deployment fields the deployer can filter; the command filters them itself.
    healthy = run(ip, "%mlops deployments --filter state=HEALTHY").result
    assert len(healthy) >= 1 and set(healthy["state"]) == {"HEALTHY"}
    not_churn = run(ip, "%mlops deployments --filter 'project!=Customer churn' --filter state~fail").result
    assert set(not_churn["project"]) == {"Credit risk"} and set(not_churn["state"]) == {"FAILED"}
    assert list(not_churn["display_name"]) == ["credit-default with H2O-3 shadow"]


def test_deployments_of_a_user_who_sees_few(ip: InteractiveShell, sb: Sandbox) -> None:
    client = sb.client("bob")
    session.set_current_client(client)
    try:
        frame = run(ip, "%mlops deployments").result
    finally:
        session.logout()
    # bob owns Fraud detection and edits alice's Credit risk.
    assert set(frame["project"]) == {"Fraud detection", "Credit risk"}


def test_users_whoami_version(ip: InteractiveShell, alice: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ip.display_formatter.formatters["text/html"], "enabled", True)
    users = run(ip, "%mlops users").result
    assert {"alice", "bob"} <= set(users["username"])
    me = run(ip, "%mlops whoami -o me").result
    assert me.username == "alice" and ip.user_ns["me"] is me
    assert "mlops-nb-card" in ip.display_formatter.formatters["text/html"](me)
    versions = run(ip, "%mlops version").result.set_index("server")
    assert list(versions.index) == ["storage", "deployer", "ingest", "model_monitoring"]
    assert versions.loc[["storage", "deployer", "ingest"], "build_version"].str.len().gt(0).all()
    assert "no version method" in versions.loc["model_monitoring", "note"]


def test_artifact_types_and_runtimes_need_no_login(ip: InteractiveShell) -> None:
    session.logout()
    types = run(ip, "%mlops artifact-types").result
    assert "dai/mojo_pipeline" in set(types["artifact_type"])
    assert len(run(ip, "%mlops runtimes").result) == len(mlops_nb.runtimes())
    serving = run(ip, "%mlops runtimes dai/mojo_pipeline").result
    assert set(serving["model_type"]) == {"dai_mojo"} and "dai_mojo_runtime" in set(serving["runtime_name"])


def test_unknown_artifact_type_is_one_line(ip: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(ip, "%mlops runtimes no/such")
    assert isinstance(result.error_in_exec, UsageError)
    lines = output_lines(capsys)
    assert len(lines) == 1 and "dai/mojo_pipeline" in lines[0]


# -- any method ------------------------------------------------------------------------------------------


def test_call_with_fields_and_dotted_keys(ip: InteractiveShell, alice: Any) -> None:
    page = run(ip, "%mlops call storage.project.list_projects paging.page_size=1").result
    assert len(page) == 1
    project_id = page["id"][0]
    got = run(ip, f"%mlops call storage.project.get_project project_id={project_id}").result
    assert got.project.id == project_id
    camel = run(ip, f"%mlops call storage.project.get_project projectId={project_id} -o found").result
    assert camel.project.id == project_id and ip.user_ns["found"] is camel
    me = run(ip, "%mlops call storage.user.who_am_i").result
    assert me.user.username == "alice"


def test_call_values_are_json_where_they_parse(ip: InteractiveShell, alice: Any) -> None:
    created = run(ip, '%mlops call storage.project.create_project project.display_name=\'"42"\' '
                      'project.description=plain text').result
    assert created is None or created.project.display_name == "42"


def test_call_rejects_unknown_fields(ip: InteractiveShell, alice: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = run(ip, "%mlops call storage.project.list_projects paging.page_sise=1")
    assert isinstance(result.error_in_exec, UsageError)
    assert "page_sise" in output_lines(capsys)[0]
    result = run(ip, "%mlops call storage.user.who_am_i x=1")
    assert isinstance(result.error_in_exec, UsageError)


def test_an_api_error_shows_its_code_and_message_in_one_line(ip: InteractiveShell, alice: Any,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    result = run(ip, "%mlops call storage.project.get_project project_id=nope")
    assert isinstance(result.error_in_exec, CommandFailed)
    lines = output_lines(capsys)
    assert len(lines) == 1
    assert lines[0].startswith("NotFound: NOT_FOUND in storage.project.get_project")


def test_short_errors_off_brings_the_traceback_back(ip: InteractiveShell, alice: Any,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%config MLOps.short_errors = False")
    try:
        result = run(ip, "%mlops call storage.project.get_project project_id=nope")
    finally:
        run(ip, "%config MLOps.short_errors = True")
    assert isinstance(result.error_in_exec, mlops_nb.NotFound)
    assert "Traceback" in capsys.readouterr().out


def test_cell_magic_takes_json_or_yaml(ip: InteractiveShell, alice: Any) -> None:
    from_json = run(ip, '%%mlops storage.project.create_project\n{"project": {"displayName": "From JSON"}}').result
    assert from_json.project.display_name == "From JSON"
    from_yaml = run(ip, "%%mlops storage.project.create_project -o made\nproject:\n  display_name: From YAML\n"
                        "  description: two words\n").result
    assert from_yaml.project.description == "two words" and ip.user_ns["made"] is from_yaml
    listed = run(ip, "%%mlops storage.project.list_projects\npaging: {page_size: 1}\n").result
    assert len(listed) == 1


@pytest.mark.parametrize(("cell", "words"), [
    ("%%mlops storage.project.create_project\n[1, 2]", "must hold an object"),
    ("%%mlops storage.project.create_project\nproject: {display_name: [unclosed", "neither JSON nor YAML"),
    ("%%mlops storage.project.create_project\nprojekt: {}", "no field"),
])
def test_cell_magic_body_errors_are_usage_errors(ip: InteractiveShell, alice: Any, cell: str, words: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    result = run(ip, cell)
    assert isinstance(result.error_in_exec, UsageError)
    lines = output_lines(capsys)
    assert len(lines) == 1 and words in lines[0]


# -- login, logout, sandbox --------------------------------------------------------------------------------


def test_login_shows_the_form_prefilled(ip: InteractiveShell) -> None:
    with capture_output() as captured:
        result = run(ip, "%mlops login --gateway https://api.example --client-id abc --no-verify-tls")
    assert result.success and result.result is None
    views = [o for o in captured.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    assert len(views) == 1
    assert views[0].data["text/plain"].startswith(LoginForm.__name__)
    # The form shown, by its widget model id: its fields hold what the line gave.
    from ipywidgets.widgets import widget

    # Every live widget by model id: ipywidgets 8.1 keeps them in _instances, 8.0 in Widget._active_widgets.
    _instances = getattr(widget, "_instances", None) or widget.Widget._active_widgets
    form = _instances[views[0].data["application/vnd.jupyter.widget-view+json"]["model_id"]]
    assert isinstance(form, LoginForm)
    assert (form.gateway_url.value, form.client_id.value, form.verify_tls.value) == ("https://api.example", "abc", False)
    with capture_output() as captured:
        run(ip, "%mlops login --cloud-url https://cloud.example").raise_error()
    [view] = [o for o in captured.outputs if "application/vnd.jupyter.widget-view+json" in o.data]
    assert _instances[view.data["application/vnd.jupyter.widget-view+json"]["model_id"]].cloud_url.value == \
        "https://cloud.example"


def test_logout(ip: InteractiveShell, alice: Any, capsys: pytest.CaptureFixture[str]) -> None:
    run(ip, "%mlops logout")
    assert "Logged out." in capsys.readouterr().out
    with pytest.raises(session.NotLoggedIn):
        session.current_client()
    run(ip, "%mlops logout")
    assert "Not logged in." in capsys.readouterr().out


def test_sandbox_starts_once_logs_in_and_stops(ip: InteractiveShell, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "magic-sandbox.sqlite3"
    try:
        me = run(ip, f"%mlops sandbox --db {db} -o sandbox_user").result
        assert me.username == "alice" and ip.user_ns["sandbox_user"] is me
        client = session.current_client()
        access = client.token_provider()
        projects = run(ip, "%mlops projects").result
        assert "Credit risk" in set(projects["display_name"])
        bob = run(ip, "%mlops sandbox --user bob").result
        assert bob.username == "bob"
        assert session.current_client().gateway_url == client.gateway_url  # the same sandbox, reused
        nobody = run(ip, "%mlops sandbox --user carol")
        assert isinstance(nobody.error_in_exec, UsageError)
        assert session.current_client().gateway_url == client.gateway_url
        text = capsys.readouterr()
        assert access not in text.out + text.err
        # Another database (a notebook run again makes a new temporary one): the first sandbox stops,
        # saying so, and one runs.
        first = mlops_nb.sandbox.started()
        assert first is not None
        run(ip, f"%mlops sandbox --db {tmp_path / 'other.sqlite3'}").raise_error()
        assert f"Stopped the sandbox started before in this kernel, at {client.gateway_url}." in capsys.readouterr().out
        second = mlops_nb.sandbox.started()
        assert not first.running and second is not None and second is not first
        assert session.current_client().gateway_url == second.gateway_url
    finally:
        run(ip, "%mlops sandbox --stop")
    assert "Stopped the sandbox" in capsys.readouterr().out
    with pytest.raises(session.NotLoggedIn):
        session.current_client()


# -- options: %config, config files, environment -------------------------------------------------------------


def test_config_magic_sets_the_shared_settings_both_ways(ip: InteractiveShell,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    run(ip, "%config MLOps.max_rows = 500")
    assert settings.max_rows == 500
    run(ip, "%config MLOps.interactive_tables = False")
    assert settings.interactive_tables is False
    run(ip, "%config MLOps.page_size = 7")
    run(ip, "%config MLOps.timeout = 12.5")
    run(ip, "%config MLOps.max_columns = 0")
    assert (settings.page_size, settings.timeout, settings.max_columns) == (7, 12.5, 0)
    settings.max_rows = 42
    magics = next(c for c in ip.configurables if isinstance(c, MLOps))
    assert magics.max_rows == 42
    run(ip, "%config MLOps.max_rows = 0")
    assert settings.max_rows == 42 and magics.max_rows == 42
    assert "max_rows must be at least 1" in caplog.text  # %config logs what it rejects


def test_concurrent_calls_is_an_option_with_bounds(ip: InteractiveShell, caplog: pytest.LogCaptureFixture) -> None:
    run(ip, "%config MLOps.concurrent_calls = 3")
    assert settings.concurrent_calls == 3
    for refused in (0, 33):
        run(ip, f"%config MLOps.concurrent_calls = {refused}")
        assert settings.concurrent_calls == 3
    assert "concurrent_calls must be 1 to 32" in caplog.text


def test_retry_options_reach_new_clients(ip: InteractiveShell) -> None:
    run(ip, "%config MLOps.retry_deadline = 5")
    assert settings.retry_deadline == 5
    client = mlops_nb.Client("http://127.0.0.1:9", lambda: "token")
    assert client.retry.enabled and client.retry.deadline == 5
    run(ip, "%config MLOps.retries = False")
    assert not mlops_nb.Client("http://127.0.0.1:9", lambda: "token").retry.enabled
    # An explicit policy wins over the settings.
    assert mlops_nb.Client("http://127.0.0.1:9", lambda: "t", retry=True).retry.deadline == 30


def test_retry_options_from_the_environment(ip: InteractiveShell, fresh_magics: list[MLOps],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_NB_RETRY_DEADLINE", "9")
    monkeypatch.setenv("MLOPS_NB_RETRIES", "false")
    fresh_magics.append(MLOps(ip))
    assert (settings.retry_deadline, settings.retries) == (9, False)


@pytest.fixture
def fresh_magics(ip: InteractiveShell) -> Iterator[list[MLOps]]:
    """MLOps instances a test makes; closed (unlinked from the settings) and removed afterwards."""
    made: list[MLOps] = []
    yield made
    for magics in made:
        magics.close()
        ip.configurables.remove(magics)
    current = next(c for c in ip.configurables if isinstance(c, MLOps))
    for name in settings.trait_names():
        setattr(current, name, getattr(settings, name))


def test_options_from_the_environment(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch,
                                      fresh_magics: list[MLOps], capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLOPS_NB_MAX_ROWS", "77")
    monkeypatch.setenv("MLOPS_NB_INTERACTIVE_TABLES", "false")
    monkeypatch.setenv("MLOPS_NB_SHORT_ERRORS", "0")
    monkeypatch.setenv("MLOPS_NB_PAGE_SIZE", "zero")
    monkeypatch.setenv("MLOPS_NB_MAX_COLUMNS", "0")
    monkeypatch.setenv("MLOPS_NB_CONCURRENT_CALLS", "2")
    magics = MLOps(ip)
    fresh_magics.append(magics)
    assert magics.max_rows == 77 and settings.max_rows == 77
    assert magics.max_columns == 0 and settings.max_columns == 0
    assert magics.concurrent_calls == 2 and settings.concurrent_calls == 2
    assert magics.interactive_tables is False and settings.interactive_tables is False
    assert magics.short_errors is False
    assert magics.page_size == settings.page_size
    assert "ignoring MLOPS_NB_PAGE_SIZE='zero'" in capsys.readouterr().err


def test_an_ipython_config_file_wins_over_the_environment(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch,
                                                          fresh_magics: list[MLOps]) -> None:
    monkeypatch.setenv("MLOPS_NB_MAX_ROWS", "77")
    ip.config.MLOps.max_rows = 321  # what `c.MLOps.max_rows = 321` in ipython_config.py gives
    magics = MLOps(ip)
    fresh_magics.append(magics)
    assert magics.max_rows == 321 and settings.max_rows == 321


# -- completion -------------------------------------------------------------------------------------------------


def completions(ip: InteractiveShell, text: str) -> list[tuple[str, str]]:
    """(completion, the text it replaces) for the cursor at the end of ``text``."""
    with provisionalcompleter():
        return [(c.text, text[c.start:c.end]) for c in ip.Completer.completions(text, len(text))]


def test_completes_commands_options_and_method_names(ip: InteractiveShell) -> None:
    assert completions(ip, "%mlops pro") == [("projects", "pro")]
    assert [c for c, _ in completions(ip, "%mlops ")][:3] == ["login", "logout", "whoami"]
    assert ("artifact-types", "") in completions(ip, "%mlops ")
    assert ("--limit", "--li") in completions(ip, "%mlops projects --li")
    assert completions(ip, "df = %mlops vers") == [("version", "vers")]
    names = [c for c, _ in completions(ip, "%mlops call storage.project.li")]
    assert "storage.project.list_projects" in names and all(n.startswith("storage.project.li") for n in names)
    assert completions(ip, "%%mlops deployer.deployment_status.get") == [
        ("deployer.deployment_status.get_deployment_status", "deployer.deployment_status.get")]
    assert ("paging=", "pag") in completions(ip, "%mlops call storage.project.list_projects pag")
    assert ("dai/mojo_pipeline", "dai/") in completions(ip, "%mlops runtimes dai/")


def names_fetched(cache: completion.NameCache) -> None:
    """Start the background fetch of the names completion offers and wait for it (a keystroke does not)."""
    cache.names()
    assert cache.settled(timeout=60)


def test_completes_project_names(ip: InteractiveShell, alice: Any) -> None:
    names_fetched(completion.project_names)
    assert completions(ip, "%mlops experiments Cr") == [("Credit risk", "Cr")]
    assert completions(ip, "%mlops experiments Credit r") == [("Credit risk", "Credit r")]
    assert completions(ip, "%mlops models 'Cus") == [("'Customer churn'", "'Cus")]
    assert ("Credit risk", "") in completions(ip, "%mlops deployments ")


def test_completion_answers_at_once_and_fetches_names_in_the_background(ip: InteractiveShell,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # A gateway that takes 8 s to list projects (the background fetch is let wait that long): before, each
    # keystroke waited for it on the kernel's thread.
    monkeypatch.setattr(completion, "FETCH_TIMEOUT", 30.0)
    with CaptureServer() as gateway:
        gateway.respond(LIST_PROJECTS, {"project": [{"id": "p1", "displayName": "Slow project"}]}, delay=8.0)
        session.set_current_client(mlops_nb.Client(gateway.url, lambda: "token"))
        try:
            assert completions(ip, "%mlops experiments Sl") == []  # the fetch is under way; nothing waited for it
            assert completions(ip, "%mlops experiments Sl") == []
            assert completion.project_names.settled(timeout=60)
            assert completions(ip, "%mlops experiments Sl") == [("Slow project", "Sl")]
            assert sum(r.path == LIST_PROJECTS for r in gateway.requests) == 1  # one fetch, not one per keystroke
        finally:
            session.logout()


def test_other_lines_complete_as_before(ip: InteractiveShell) -> None:
    assert ("print", "pri") in completions(ip, "x = 1; pri")


# -- deploying from magics ---------------------------------------------------------------------------------


def test_deploy_wait_status_logs_score_monitor(ip: InteractiveShell, alice: Any, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    ip.user_ns["churn_passphrase"] = "not in the notebook"
    deployed = run(ip, '%mlops deploy scikit-learn pipeline --project "Customer churn" --name churn-live '
                       "--passphrase-from churn_passphrase --no-wait -o churn").result
    assert deployed.display_name == "churn-live" and ip.user_ns["churn"] is deployed
    status = run(ip, "%mlops wait churn-live --timeout 300").result
    assert status.state.value == "HEALTHY"
    assert run(ip, "%mlops status churn-live").result.deployment_id == deployed.id
    ip.user_ns["customers"] = pd.DataFrame({"tenure_months": [2.0, 60.0], "monthly_charges": [80.0, 30.0],
                                            "support_calls": [6.0, 0.0]}, index=["new", "loyal"])
    scored = run(ip, "%mlops score churn-live customers --passphrase-from churn_passphrase -o churn_scores").result
    assert list(scored.index) == ["new", "loyal"] and set(scored["prediction"]) <= {0, 1}
    assert ip.user_ns["churn_scores"] is scored
    logs = run(ip, "%mlops logs churn-live --lines 3").result
    assert len(logs) == 3 and list(logs.columns) == ["time", "source", "message"]
    watched = run(ip, "%mlops monitor churn-live").result
    assert watched.summary["rows_scored"] == 2
    capsys.readouterr()
    # Usage errors are one line, and the passphrase shows nowhere.
    for line, words in [("%mlops score churn-live nobody", "no variable 'nobody'"),
                        ("%mlops score churn-live churn", "is a DeployDeployment, not a DataFrame"),
                        ("%mlops deploy scikit-learn pipeline --runtime h2o3_mojo_runtime",
                         "cannot serve python/mlflow artifacts"),
                        ("%mlops score churn-live customers --passphrase-from missing", "no variable 'missing'"),
                        ("%mlops status no-such-deployment", "no deployment has the id or name")]:
        result = run(ip, line)
        assert result.error_in_exec is not None or result.error_before_exec is not None
        shown = "\n".join(output_lines(capsys))
        assert words in shown, (line, shown)
        assert "not in the notebook" not in shown
    alice.deployer.deployment.delete_deployment(id=deployed.id)


def test_deployment_names_complete(ip: InteractiveShell, alice: Any) -> None:
    names_fetched(completion.deployment_names)
    assert [c for c, _ in completions(ip, "%mlops status cre")] == [
        "credit-default", "credit-default A/B", "credit-default with H2O-3 shadow"]
    assert ("churn-h2o", "chu") in completions(ip, "%mlops logs chu")
    assert completions(ip, "%mlops wait fr") == []  # fraud is bob's: alice does not see it
    assert [c for c, _ in completions(ip, '%mlops score "credit-default A')] == ['"credit-default A/B"']
    ip.user_ns.update(applicants=pd.DataFrame({"age": [30]}), apples=3)
    assert [c for c, _ in completions(ip, '%mlops score "credit-default A/B" app')] == ["applicants"]
    assert [c for c, _ in completions(ip, "%mlops score credit-default app")] == ["applicants"]
