"""``%mlops`` and ``%%mlops``: H2O MLOps from notebook cells (``%load_ext mlops_nb``).

Commands (``%mlops COMMAND --help`` for each)::

    %mlops login [--cloud-url URL] [--gateway URL] [--token-endpoint URL] [--client-id ID] [--ca-bundle PATH] [--no-verify-tls]
    %mlops logout
    %mlops whoami [-o NAME]
    %mlops projects [LIST OPTIONS]
    %mlops workspaces [LIST OPTIONS]
    %mlops experiments PROJECT [LIST OPTIONS]
    %mlops models PROJECT [LIST OPTIONS]
    %mlops deployments [PROJECT] [LIST OPTIONS]
    %mlops users [LIST OPTIONS]
    %mlops artifact-types [-o NAME]
    %mlops runtimes [ARTIFACT_TYPE] [-o NAME]
    %mlops version [-o NAME]
    %mlops sandbox [--user alice|bob] [--db PATH] [--data demo|empty] [--port N] [--generation G] [--stop] [-o NAME]
    %mlops call SERVER.ENTITY.METHOD [FIELD=VALUE ...] [-o NAME]
    %mlops deploy EXPERIMENT [--project P] [--name N] [--runtime R] [--passphrase-from VAR] [--no-wait] [-o NAME]
    %mlops status DEPLOYMENT [--project P] [-o NAME]
    %mlops wait DEPLOYMENT [--project P] [--timeout S] [-o NAME]
    %mlops logs DEPLOYMENT [--project P] [--lines N] [--filter TEXT] [-o NAME]
    %mlops score DEPLOYMENT DATAFRAME_VARIABLE [--project P] [--passphrase-from VAR] [-o NAME]
    %mlops monitor DEPLOYMENT [--project P] [--model EXPERIMENT_ID] [-o NAME]

    %%mlops SERVER.ENTITY.METHOD [-o NAME]
    <request body as JSON or YAML>

The commands do the same on either generation of the MLOps API (the client's): on the
workspaces generation (MLOps 1.0 and later) a project is a workspace, PROJECT names one, and
``projects`` and ``workspaces`` list them; ``sandbox --generation workspaces`` logs in to the
local sandbox's workspaces face.

LIST OPTIONS are ``--limit N`` (default: ``max_rows``) or ``--all``, ``--filter
FIELD=VALUE`` (also ``FIELD!=VALUE``, ``FIELD~TEXT`` for "contains"; repeatable,
all must hold), ``--sort FIELD`` (``--sort -FIELD`` descending) and ``-o NAME``,
which also stores the result in the variable ``NAME``. PROJECT is a project's id
or display name (quotes optional). List commands return DataFrames, so
``df = %mlops projects`` works.

``call`` values are parsed as JSON where they parse and taken as strings
otherwise; dotted keys set nested fields (``paging.page_size=5``).

EXPERIMENT and DEPLOYMENT are ids or display names (``--project`` narrows a name to one
project). A passphrase is never typed into a magic line, which the notebook keeps: name the
variable that holds it with ``--passphrase-from``.

Options are traits of the ``MLOps`` configurable: ``%config MLOps.max_rows = 500``,
``c.MLOps.max_rows = 500`` in an IPython config file, or environment variables read
when the extension loads. ``%config`` and config files win over the environment:

* ``MLOps.max_rows`` (``MLOPS_NB_MAX_ROWS``): rows fetched by default and put in tables
* ``MLOps.max_columns`` (``MLOPS_NB_MAX_COLUMNS``): columns a table shows of a wider frame (0: all)
* ``MLOps.page_size`` (``MLOPS_NB_PAGE_SIZE``): entities asked for per list call
* ``MLOps.timeout`` (``MLOPS_NB_TIMEOUT``): seconds per HTTP call of new clients
* ``MLOps.retries`` (``MLOPS_NB_RETRIES``): new clients retry read-only calls (and writes never sent)
* ``MLOps.retry_deadline`` (``MLOPS_NB_RETRY_DEADLINE``): seconds within which one call is retried
* ``MLOps.interactive_tables`` (``MLOPS_NB_INTERACTIVE_TABLES``): interactive (itables) or static tables
* ``MLOps.short_errors`` (``MLOPS_NB_SHORT_ERRORS``): API errors as one line, not a traceback
* ``MLOps.concurrent_calls`` (``MLOPS_NB_CONCURRENT_CALLS``): calls made at once when a command
  fans out over projects (``%mlops deployments`` without a project)

All but ``short_errors`` are linked both ways to :data:`mlops_nb.notebook.settings.settings`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from typing import Any

import pandas as pd
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display
from traitlets import Bool, TraitError, TraitType, link, validate

from mlops_nb.api import API, ApiDescription, Method
from mlops_nb.notebook import catalogs, completion
from mlops_nb.notebook.deploy import deploy
from mlops_nb.notebook.display import install_ipython_formatters
from mlops_nb.notebook.frames import FRAME_ATTR, list_all
from mlops_nb.notebook.generations import entity_id, operations
from mlops_nb.notebook.local_sandbox import running_sandbox, start_sandbox, stop_sandbox
from mlops_nb.notebook.logs import deployment_logs
from mlops_nb.notebook.lookup import EntityLookupError, deployment_id, find_experiment, find_project
from mlops_nb.notebook.query import QueryError
from mlops_nb.notebook.scoring import score
from mlops_nb.notebook.session import NotLoggedIn, current_client, logout
from mlops_nb.notebook.settings import Settings, settings
from mlops_nb.notebook.waiting import wait_for_healthy
from mlops_nb.wire.errors import MLOpsError
from mlops_nb.wire.messages import Message, message_class

__all__ = ["MLOps", "CommandFailed", "load_ipython_extension", "unload_ipython_extension"]

ENVIRONMENT = {
    "max_rows": "MLOPS_NB_MAX_ROWS",
    "max_columns": "MLOPS_NB_MAX_COLUMNS",
    "page_size": "MLOPS_NB_PAGE_SIZE",
    "timeout": "MLOPS_NB_TIMEOUT",
    "retries": "MLOPS_NB_RETRIES",
    "retry_deadline": "MLOPS_NB_RETRY_DEADLINE",
    "interactive_tables": "MLOPS_NB_INTERACTIVE_TABLES",
    "short_errors": "MLOPS_NB_SHORT_ERRORS",
    "concurrent_calls": "MLOPS_NB_CONCURRENT_CALLS",
}
_MIRRORED = ("interactive_tables", "max_rows", "max_columns", "page_size", "timeout", "retries", "retry_deadline",
             "concurrent_calls")

_TRUNCATED = "The first {limit:,} are listed; --all lists every one, --limit N another number."

class CommandFailed(Exception):
    """An ``%mlops`` command failed for a reason to show in one line (``error`` is the cause)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error

    def _render_traceback_(self) -> list[str]:
        # IPython shows what this returns instead of a traceback (the hook ipyparallel uses).
        return [f"{type(self.error).__name__}: {self.error}"]


class _HelpShown(Exception):
    """argparse printed help and wants to exit; the magic just returns."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one ``UsageError`` line and never exits the kernel.

    ``exit_on_error=False`` alone is not enough: before Python 3.12 missing arguments
    still call ``error()``, which exits.
    """

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if message:
            print(message, end="")
        raise _HelpShown


def _mirror(name: str) -> TraitType:
    """A config trait shaped like the settings trait ``name`` (same type, default and help)."""
    trait = Settings.class_traits()[name]
    return type(trait)(trait.default_value, help=trait.help).tag(config=True)


@magics_class
class MLOps(Magics):
    """The ``%mlops`` line magic and ``%%mlops`` cell magic (see :mod:`mlops_nb.notebook.magics`)."""

    interactive_tables = _mirror("interactive_tables")
    max_rows = _mirror("max_rows")
    max_columns = _mirror("max_columns")
    page_size = _mirror("page_size")
    timeout = _mirror("timeout")
    retries = _mirror("retries")
    retry_deadline = _mirror("retry_deadline")
    concurrent_calls = _mirror("concurrent_calls")
    short_errors = Bool(
        True, help="Show API errors (and 'not logged in') of %mlops commands as one line; "
                   "False shows the full traceback.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        configured = set(self.config[type(self).__name__]) if type(self).__name__ in self.config else set()
        for name in ENVIRONMENT:
            if name not in configured and not self._apply_environment(name) and name in _MIRRORED:
                setattr(self, name, getattr(settings, name))
        self._links = [link((self, name), (settings, name)) for name in _MIRRORED]

    @validate(*_MIRRORED)
    def _valid_as_setting(self, proposal: Any) -> Any:
        # The settings class holds the rules; a throwaway instance applies them without
        # touching the shared settings.
        Settings(**{proposal["trait"].name: proposal["value"]})
        return proposal["value"]

    def _apply_environment(self, name: str) -> bool:
        """Set option ``name`` from its environment variable; False if unset or invalid (with a warning)."""
        raw = os.environ.get(ENVIRONMENT[name], "").strip()
        if not raw:
            return False
        try:
            setattr(self, name, self.traits()[name].from_string(raw))
        except (TraitError, ValueError) as e:
            print(f"mlops_nb: ignoring {ENVIRONMENT[name]}={raw!r}: {e}", file=sys.stderr)
            return False
        return True

    def close(self) -> None:
        """Stop mirroring the settings (on unload)."""
        for each in self._links:
            each.unlink()
        self._links = []

    # -- entry point ---------------------------------------------------------------------------------

    @line_cell_magic
    def mlops(self, line: str, cell: str | None = None) -> Any:
        """Run an MLOps command; ``%mlops --help`` lists them."""
        try:
            try:
                argv = shlex.split(line)
            except ValueError as e:
                raise UsageError(f"%mlops: cannot split the line into arguments ({e})") from None
            if cell is not None:
                return self._cell(argv, cell)
            return self._line(argv)
        except _HelpShown:
            return None
        except QueryError as e:
            raise UsageError(f"%mlops: {e}") from None
        except (MLOpsError, NotLoggedIn, EntityLookupError) as e:
            if not self.short_errors:
                raise
            raise CommandFailed(e) from None

    def _line(self, argv: list[str]) -> Any:
        if not argv:
            _command_parser().print_help()
            return None
        command = argv[0]
        if not command.startswith("-") and command not in COMMANDS:
            close = _close_matches(command, COMMANDS, 1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"%mlops: no command {command!r}{hint} (%mlops --help lists them)")
        args = _command_parser().parse_args(_attach_negative_sort(argv))
        result = args.handler(self, args)
        return self._store(args, result)

    def _cell(self, argv: list[str], cell: str) -> Any:
        args = _cell_parser().parse_args(argv)
        body = _parse_body(cell)
        return self._store(args, _call(_method(args.method), body))

    def _store(self, args: argparse.Namespace, result: Any) -> Any:
        name = getattr(args, "output", None)
        if name:
            self.shell.user_ns[name] = result
        return result

    # -- commands -------------------------------------------------------------------------------------

    def _login(self, args: argparse.Namespace) -> None:
        from mlops_nb.notebook.login import LoginForm  # ipywidgets: loaded when a form is shown

        display(LoginForm(args.gateway, args.token_endpoint, args.client_id, cloud_url=args.cloud_url,
                          ca_bundle=args.ca_bundle,
                          verify_tls=False if args.no_verify_tls else None))

    def _logout(self, args: argparse.Namespace) -> None:
        print("Logged out." if logout() else "Not logged in.")

    def _whoami(self, args: argparse.Namespace) -> Message:
        return operations(current_client()).who_am_i()

    def _projects(self, args: argparse.Namespace) -> pd.DataFrame:
        return _list(current_client(), "project", args)

    def _experiments(self, args: argparse.Namespace) -> pd.DataFrame:
        return self._in_project(args, "experiment")

    def _models(self, args: argparse.Namespace) -> pd.DataFrame:
        return self._in_project(args, "registered model")

    def _in_project(self, args: argparse.Namespace, kind: str) -> pd.DataFrame:
        client = current_client()
        project = entity_id(find_project(client, " ".join(args.project)))
        return _list(client, kind, args, **operations(client).scope(kind, project))

    def _users(self, args: argparse.Namespace) -> pd.DataFrame:
        return _list(current_client(), "user", args)

    def _deployments(self, args: argparse.Namespace) -> pd.DataFrame:
        from mlops_nb.notebook.fanout import all_deployments  # its thread pool loads with the first use

        client = current_client()
        projects = [find_project(client, " ".join(args.project))] if args.project else None
        limit = _limit(args)
        # One row past the limit tells whether the combined list was cut.
        result = all_deployments(client, projects, limit_per_project=None if limit is None else limit + 1,
                                 where=args.filter, sort=args.sort)
        if limit is not None and len(result) > limit:
            result = result.iloc[:limit]
            print(_TRUNCATED.format(limit=limit))
        return result

    def _artifact_types(self, args: argparse.Namespace) -> pd.DataFrame:
        return _as_list_table(catalogs.artifact_types(), "artifact types")

    def _runtimes(self, args: argparse.Namespace) -> pd.DataFrame:
        try:
            table = catalogs.runtimes_for(args.artifact_type) if args.artifact_type else catalogs.runtimes()
        except LookupError as e:
            raise UsageError(f"%mlops runtimes: {e}") from None
        return _as_list_table(table, "runtimes")

    def _version(self, args: argparse.Namespace) -> pd.DataFrame:
        client = current_client()
        api = _api(client)
        methods = {m.service.server: m for m in api.methods if m.python == "get_version"}
        rows = []
        for server in api.servers:
            if server in ("bytestream", "authz"):
                continue  # storage serves the one; the other is a gateway of workspaces, not an MLOps server
            method = methods.get(server)
            if method is None:
                rows.append({"server": server, "build_version": None, "note": "this server has no version method"})
                continue
            try:
                version = _bound(client, method)().version
                rows.append({"server": server, "build_version": version.build_version if version else "",
                             "note": ""})
            except MLOpsError as e:
                rows.append({"server": server, "build_version": None, "note": str(e)})
        return _as_list_table(pd.DataFrame(rows).astype({"server": "string", "build_version": "string",
                                                         "note": "string"}), "versions")

    def _sandbox(self, args: argparse.Namespace) -> Message | None:
        if args.stop:
            gateway = stop_sandbox()
            print(f"Stopped the sandbox at {gateway}." if gateway else "No sandbox is running in this kernel.")
            return None
        try:
            user = start_sandbox(args.user, data=args.data, port=args.port, db=args.db, generation=args.generation)
        except ValueError as e:
            raise UsageError(f"%mlops sandbox: {e}") from None
        sandbox = running_sandbox()
        print(f"Sandbox gateway at {sandbox.gateway_url} (database {sandbox.db}); logged in as "
              f"{getattr(user, 'username', None) or user.display_name}.")
        return user

    def _call_command(self, args: argparse.Namespace) -> Any:
        method = _method(args.method)
        return _call(method, _fields_from_assignments(args.fields))

    # -- deploying --------------------------------------------------------------------------------------

    def _passphrase(self, args: argparse.Namespace) -> str | None:
        name = args.passphrase_from
        if not name:
            return None
        if name not in self.shell.user_ns:
            raise UsageError(f"%mlops {args.command}: no variable {name!r} holds the passphrase")
        value = self.shell.user_ns[name]
        if not isinstance(value, str) or not value:
            raise UsageError(f"%mlops {args.command}: {name} must hold the passphrase as a non-empty str")
        return value

    def _deploy(self, args: argparse.Namespace) -> Message:
        client = current_client()
        text = " ".join(args.experiment)
        experiment = find_experiment(client, args.project, text) if args.project else text
        try:
            deployment = deploy(client, experiment, name=args.name, runtime=args.runtime,
                                passphrase=self._passphrase(args))
        except (ValueError, LookupError) as e:
            raise UsageError(f"%mlops deploy: {e}") from None
        if args.no_wait:
            return deployment
        wait_for_healthy(client, deployment)
        return deployment

    def _deployment(self, args: argparse.Namespace) -> str:
        try:
            return deployment_id(current_client(), " ".join(args.deployment), args.project)
        except LookupError as e:
            raise UsageError(f"%mlops {args.command}: {e}") from None

    def _status(self, args: argparse.Namespace) -> Message:
        return operations(current_client()).status(self._deployment(args))

    def _wait(self, args: argparse.Namespace) -> Message:
        return wait_for_healthy(current_client(), self._deployment(args), timeout=args.timeout)

    def _logs(self, args: argparse.Namespace) -> pd.DataFrame:
        return deployment_logs(current_client(), self._deployment(args), max_lines=args.lines,
                               filter=args.filter or "")

    def _score(self, args: argparse.Namespace) -> pd.DataFrame:
        *words, variable = args.deployment
        if not words:
            raise UsageError("%mlops score: name the deployment, then the variable holding the DataFrame")
        if variable not in self.shell.user_ns:
            raise UsageError(f"%mlops score: no variable {variable!r} (the DataFrame to score)")
        frame = self.shell.user_ns[variable]
        if not isinstance(frame, pd.DataFrame):
            raise UsageError(f"%mlops score: {variable} is a {type(frame).__name__}, not a DataFrame")
        args.deployment = words
        try:
            return score(current_client(), self._deployment(args), frame,
                         passphrase=self._passphrase(args))
        except KeyError as e:
            raise UsageError(f"%mlops score: {e.args[0]}") from None

    def _monitor(self, args: argparse.Namespace) -> Any:
        from mlops_nb.notebook.monitoring import monitoring  # matplotlib and friends load only here

        try:
            return monitoring(current_client(), self._deployment(args), model=args.model)
        except ValueError as e:
            raise UsageError(f"%mlops monitor: {e}") from None


# -- lists ------------------------------------------------------------------------------------------


def _list(client: Any, kind: str, args: argparse.Namespace, **fields: Any) -> pd.DataFrame:
    """A list command's frame (``kind``: what it lists, listed where the client's generation keeps it);
    says so when --limit (or max_rows) cut it."""
    limit = _limit(args)
    frame = _fetch(operations(client).list_method(kind), args, limit, **fields)
    if limit is not None and len(frame) >= limit and _more_available(frame):
        print(_TRUNCATED.format(limit=limit))
    return frame


def _fetch(list_method: Callable[..., Any], args: argparse.Namespace, limit: int | None,
           **fields: Any) -> pd.DataFrame:
    """Every page (up to ``limit`` rows) of a list call, with the command's --filter and --sort."""
    return list_all(list_method, where=args.filter, sort=args.sort, limit=limit, **fields)


# -- parsing ------------------------------------------------------------------------------------------


def _log_out_of(gateway_url: str) -> None:
    """Forget the session's login if it is to ``gateway_url`` (a sandbox about to stop)."""
    try:
        if current_client().gateway_url == gateway_url:
            logout()
    except NotLoggedIn:
        pass


def _name(text: str) -> str:
    if not text.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not a Python variable name")
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _output_options() -> _Parser:
    parent = _Parser(add_help=False)
    parent.add_argument("-o", "--output", metavar="NAME", type=_name,
                        help="also store the result in the variable NAME")
    return parent


def _list_options() -> _Parser:
    parent = _Parser(add_help=False, parents=[_output_options()])
    amount = parent.add_mutually_exclusive_group()
    amount.add_argument("--limit", type=_positive, metavar="N",
                        help="list at most N (default: MLOps.max_rows)")
    amount.add_argument("--all", action="store_true", help="list every one, however many")
    parent.add_argument("--filter", action="append", metavar="FIELD=VALUE", default=[],
                        help="keep those whose FIELD equals VALUE (FIELD!=VALUE: differs, FIELD~TEXT: "
                             "contains TEXT); repeat to require several")
    parent.add_argument("--sort", metavar="[-]FIELD", help="sort by FIELD; -FIELD sorts descending")
    return parent


# Every line command: name -> (handler, one-line help), in the order --help lists them.
COMMANDS: dict[str, tuple[Callable[[MLOps, argparse.Namespace], Any], str]] = {
    "login": (MLOps._login, "show the login form"),
    "logout": (MLOps._logout, "forget the current login"),
    "whoami": (MLOps._whoami, "the user you are logged in as"),
    "projects": (MLOps._projects, "your projects (workspaces, on the workspaces generation of the API)"),
    "workspaces": (MLOps._projects, "your workspaces (the same list as projects)"),
    "experiments": (MLOps._experiments, "the experiments of a project"),
    "models": (MLOps._models, "the registered models of a project"),
    "deployments": (MLOps._deployments, "deployments with their state: of a project, or every one you can see"),
    "users": (MLOps._users, "the platform's users"),
    "artifact-types": (MLOps._artifact_types, "artifact types and what deploys them"),
    "runtimes": (MLOps._runtimes, "runtimes, or those that serve an artifact or model type"),
    "version": (MLOps._version, "the version of each MLOps server"),
    "sandbox": (MLOps._sandbox, "start a local MLOps sandbox in this kernel and log in to it"),
    "call": (MLOps._call_command, "call any method of the API"),
    "deploy": (MLOps._deploy, "deploy an experiment and wait until it is healthy"),
    "status": (MLOps._status, "a deployment's state and scoring URL"),
    "wait": (MLOps._wait, "wait until a deployment is healthy, showing its state live"),
    "logs": (MLOps._logs, "a deployment's log lines"),
    "score": (MLOps._score, "score a DataFrame variable on a deployment"),
    "monitor": (MLOps._monitor, "a deployment's monitoring metrics and plots"),
}

_LIST_COMMANDS = ("projects", "workspaces", "experiments", "models", "deployments", "users")
_PROJECT_COMMANDS = ("experiments", "models", "deployments")
_DEPLOYMENT_COMMANDS = ("status", "wait", "logs", "score", "monitor")


@cache
def _command_parser() -> _Parser:
    parser = _Parser(prog="%mlops", description="H2O MLOps from notebook cells. %mlops COMMAND --help for more.",
                     epilog="%%mlops SERVER.ENTITY.METHOD [-o NAME] takes the request body (JSON or YAML) "
                            "from the cell.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    list_options, output = _list_options(), _output_options()
    sub: dict[str, _Parser] = {}
    for name, (handler, help_text) in COMMANDS.items():
        parents = [list_options] if name in _LIST_COMMANDS else [] if name in ("login", "logout") else [output]
        sub[name] = commands.add_parser(name, help=help_text, description=help_text, parents=parents)
        sub[name].set_defaults(handler=handler)

    login = sub["login"]
    login.add_argument("--cloud-url", metavar="URL",
                       help="an H2O AI Cloud environment, whose discovery finds the rest (MLOps 1.0 and later)")
    login.add_argument("--gateway", metavar="URL", help="the MLOps gateway (default: $H2O_MLOPS_GATEWAY)")
    login.add_argument("--token-endpoint", metavar="URL",
                       help="the issuer or its token endpoint (default: $TOKEN_ENDPOINT)")
    login.add_argument("--client-id", metavar="ID", help="the OpenID client (default: $CLIENT_ID)")
    login.add_argument("--ca-bundle", metavar="PATH", help="PEM file of a private certificate authority")
    login.add_argument("--no-verify-tls", action="store_true", help="do not verify TLS certificates")
    for name in ("experiments", "models"):
        sub[name].add_argument("project", nargs="+", metavar="PROJECT", help="the project's id or display name")
    sub["deployments"].add_argument("project", nargs="*", metavar="PROJECT",
                                    help="the project's id or display name (default: every project)")
    sub["runtimes"].add_argument("artifact_type", nargs="?", metavar="ARTIFACT_TYPE",
                                 help="an artifact type (dai/mojo_pipeline), deployable artifact type "
                                      "or model type")
    sandbox = sub["sandbox"]
    sandbox.add_argument("--user", default="alice", help="log in as this demo user (default: alice)")
    sandbox.add_argument("--db", metavar="PATH",
                         help="SQLite file of the sandbox; ':memory:' keeps nothing (default: the sandbox's "
                              "file under ~/.local/share/mlops_nb)")
    sandbox.add_argument("--data", choices=("demo", "empty"), default="demo",
                         help="what a new database starts with (default: demo)")
    sandbox.add_argument("--port", type=int, default=0, help="port to serve on (default: any free port)")
    sandbox.add_argument("--stop", action="store_true", help="stop the sandbox this kernel runs")
    sandbox.add_argument("--generation", choices=("legacy", "workspaces"),
                         help="the API generation to speak to it (it serves both; default: legacy)")
    deploy = sub["deploy"]
    deploy.add_argument("experiment", nargs="+", metavar="EXPERIMENT", help="the experiment's id or display name")
    deploy.add_argument("--name", help="the deployment's name (default: the experiment's)")
    deploy.add_argument("--runtime", help="a runtime name or display name (default: the catalog's for the artifact)")
    deploy.add_argument("--no-wait", action="store_true", help="return once it is created, without waiting")
    for name in ("deploy", *_DEPLOYMENT_COMMANDS):
        sub[name].add_argument("--project", metavar="PROJECT", help="the project to look the name up in")
    for name in _DEPLOYMENT_COMMANDS:
        words = "DEPLOYMENT DATAFRAME_VARIABLE" if name == "score" else "DEPLOYMENT"
        sub[name].add_argument("deployment", nargs="+", metavar=words, help="the deployment's id or display name"
                               + (", then the variable holding the DataFrame" if name == "score" else ""))
    for name in ("deploy", "score"):
        sub[name].add_argument("--passphrase-from", metavar="VAR",
                               help="the variable holding the deployment's passphrase")
    sub["wait"].add_argument("--timeout", type=float, default=300.0, help="seconds to wait (default: 300)")
    sub["logs"].add_argument("--lines", type=_positive, help="only the last N lines")
    sub["logs"].add_argument("--filter", metavar="TEXT", help="only lines containing TEXT")
    sub["monitor"].add_argument("--model", metavar="EXPERIMENT_ID", help="one of the deployment's models "
                                "(default: its primary)")
    call = sub["call"]
    call.add_argument("method", metavar="SERVER.ENTITY.METHOD", help="e.g. storage.project.list_projects")
    call.add_argument("fields", nargs="*", metavar="FIELD=VALUE",
                      help="request fields; VALUE is JSON where it parses, else a string; "
                           "dotted FIELDs set nested fields (paging.page_size=5)")
    return parser


@cache
def _cell_parser() -> _Parser:
    parser = _Parser(prog="%%mlops", parents=[_output_options()],
                     description="Call an API method with the cell as its request body (JSON or YAML).")
    parser.add_argument("method", metavar="SERVER.ENTITY.METHOD", help="e.g. storage.project.create_project")
    return parser


def _attach_negative_sort(argv: Sequence[str]) -> list[str]:
    """``--sort -FIELD`` as ``--sort=-FIELD``: argparse would take ``-FIELD`` for an option."""
    out: list[str] = []
    rest = iter(argv)
    for arg in rest:
        if arg == "--sort":
            value = next(rest, None)
            out.append(arg if value is None else f"--sort={value}")
        else:
            out.append(arg)
    return out


def _limit(args: argparse.Namespace) -> int | None:
    return None if args.all else (args.limit or settings.max_rows)


# -- requests -------------------------------------------------------------------------------------------


def _api(client: Any) -> ApiDescription:
    """The description of the API the client speaks (its generation's)."""
    return getattr(client, "api", API)


def _method(qualified_name: str) -> Method:
    """A method of the API the current client speaks (the legacy one before a login)."""
    try:
        api = _api(current_client())
    except NotLoggedIn:
        api = API
    try:
        return api.method(qualified_name)
    except KeyError:
        names = [m.qualified_name for m in api.methods]
        close = _close_matches(qualified_name, names, 3)
        hint = (f"; did you mean {', '.join(close)}?" if close
                else "; names look like storage.project.list_projects")
        raise UsageError(f"%mlops: no API method {qualified_name!r}{hint}") from None


def _close_matches(word: str, choices: Iterable[str], count: int) -> list[str]:
    """Suggestions for a mistyped name (difflib loads only when someone mistypes)."""
    import difflib

    return difflib.get_close_matches(word, list(choices), n=count)


def _bound(client: Any, method: Method) -> Callable[..., Any]:
    return getattr(getattr(getattr(client, method.service.server), method.service.entity), method.python)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _fields_from_assignments(assignments: Iterable[str]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise UsageError(f"%mlops call: expected FIELD=VALUE, got {assignment!r}")
        *parents, leaf = key.split(".")
        node = body
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UsageError(f"%mlops call: {key!r} sets a field inside {part!r}, which already has a value")
            node = child
        node[leaf] = _parse_value(value)
    return body


def _parse_body(cell: str) -> dict[str, Any]:
    if not cell.strip():
        return {}
    try:
        body = json.loads(cell)
    except ValueError:
        import yaml  # only cells that are not JSON need it

        try:
            body = yaml.safe_load(cell)
        except yaml.YAMLError as e:
            raise UsageError(f"%%mlops: the cell is neither JSON nor YAML ({' '.join(str(e).split())})") from None
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise UsageError(f"%%mlops: the cell must hold an object (field: value), not a {type(body).__name__}")
    return body


def _unknown_fields(message: Message, path: str) -> list[str]:
    found = [f"{path}.{name}" for name in message.unknown_fields]
    for f in type(message).fields():
        value = getattr(message, f.name) if message.is_set(f.name) else None
        for item in value if isinstance(value, list) else value.values() if isinstance(value, dict) else [value]:
            if isinstance(item, Message):
                found += _unknown_fields(item, f"{path}.{f.name}")
    return found


def _request(method: Method, body: dict[str, Any]) -> Message | None:
    """The request message from JSON-ish ``body`` (wire or python field names), checked strictly."""
    if method.request_message is None:
        if body:
            raise UsageError(f"%mlops: {method.qualified_name} takes no request fields")
        return None
    cls = message_class(method.request_message, **_of_generation(method))
    try:
        request = cls.from_wire(body)
    except ValueError as e:
        raise UsageError(f"%mlops: {method.qualified_name}: {e}") from None
    unknown = _unknown_fields(request, cls.__name__)
    if unknown:
        valid = ", ".join(f.name for f in cls.fields())
        raise UsageError(f"%mlops: {method.qualified_name}: no field {unknown[0]} (fields: {valid})")
    return request


def _of_generation(method: Method) -> dict[str, str]:
    """``message_class``'s generation keyword for a method's description (none for the legacy one)."""
    generation = getattr(method.service.api, "generation", "legacy")
    return {"generation": generation} if generation != "legacy" else {}


def _call(method: Method, body: dict[str, Any]) -> Any:
    bound = _bound(current_client(), method)
    # A request message (legacy POSTs, workspaces storage) is checked field by field; the others
    # (GETs, the workspaces REST methods) take their path, query and body fields as keywords.
    one_message = (method.verb == "POST" and not method.path_params and not method.query_params
                   and method.body_field in (None, "*"))
    if not one_message:
        try:
            return bound(**body)
        except TypeError as e:
            raise UsageError(f"%mlops: {e}") from None
    return bound(_request(method, body))


def _more_available(frame: pd.DataFrame) -> bool:
    paging = getattr(frame.response, "paging", None)
    return bool(paging is not None and paging.next_page_token)


# -- results ---------------------------------------------------------------------------------------------


def _as_list_table(frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """Mark a frame (not from a list call) so that it displays as list results do."""
    frame.attrs[FRAME_ATTR] = label
    return frame


# -- completion -------------------------------------------------------------------------------------------

@cache
def _command_options() -> dict[str, list[str]]:
    """Each command's long options (argparse has no public way to list them; ``_actions`` is it)."""
    parser = _command_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: sorted(o for a in sub._actions for o in a.option_strings if o.startswith("--"))
            for name, sub in commands.choices.items()}


complete = completion.matcher(completion.Grammar(commands=list(COMMANDS), options=_command_options,
                                                project_commands=_PROJECT_COMMANDS,
                                                deployment_commands=_DEPLOYMENT_COMMANDS))


# -- the extension -----------------------------------------------------------------------------------------

_loaded: dict[int, MLOps] = {}  # id(shell) -> the magics %load_ext made there


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext mlops_nb``: register ``%mlops``/``%%mlops``, their options and completion, and the
    list table and card displays in this shell."""
    install_ipython_formatters(shell)
    magics = MLOps(shell)
    shell.register_magics(magics)
    _loaded[id(shell)] = magics
    if complete not in shell.Completer.custom_matchers:
        shell.Completer.custom_matchers.append(complete)


def unload_ipython_extension(shell: Any) -> None:
    """``%unload_ext mlops_nb``: remove the magics and undo what loading changed."""
    magics = _loaded.pop(id(shell), None)
    if magics is not None:
        magics.close()
        if magics in shell.configurables:
            shell.configurables.remove(magics)
    for kind in ("line", "cell"):
        shell.magics_manager.magics[kind].pop("mlops", None)
    if complete in shell.Completer.custom_matchers:
        shell.Completer.custom_matchers.remove(complete)
