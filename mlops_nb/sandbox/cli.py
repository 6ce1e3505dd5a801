"""``mlops-nb sandbox``: run the sandbox gateway in the foreground until Ctrl-C.

Usage (``python -m mlops_nb.sandbox`` takes exactly the same arguments)::

    mlops-nb sandbox [--host 127.0.0.1] [--port 8731] [--db PATH] [--data demo|empty|scale:N]
                     [--token-ttl SECONDS] [--revoke-refresh-tokens] [--latency MS]
                     [--faults RATE [--fault-seed N]] [--tls-cert PEM --tls-key PEM [--tls-ca PEM]]
                     [--durable] [--faces legacy|workspaces|legacy,workspaces]

It prints the gateway's URL, the issuer, and the four constants of the seed's
``connection.py`` for alice as ``export NAME=value`` lines (bob's refresh token and the
confidential client's secret as comments, so pasting the block keeps alice), then
serves until interrupted (SIGINT or SIGTERM), stops cleanly and exits 0. The database
keeps data, accounts and signing keys, so refresh tokens survive a restart on the same
port. ``--port 0`` takes any free port. ``--faces`` chooses the APIs it answers (default both:
the legacy API of ``h2o-mlops`` 1.0 and the workspaces API of MLOps 1.0 and later, over one store).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from typing import Any

from mlops_nb.sandbox.faces import FACES, check_faces
from mlops_nb.sandbox.identity import CONFIDENTIAL_CLIENT_ID
from mlops_nb.sandbox.server import Sandbox, parse_data
from mlops_nb.sandbox.store import default_db_path

__all__ = ["add_command", "run", "DEFAULT_PORT"]

DEFAULT_PORT = 8731


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0 (any free port) to 65535, got {text}")
    return value


def _data(text: str) -> str:
    try:
        parse_data(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _latency(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses NaN
        raise argparse.ArgumentTypeError(f"must be 0 or more milliseconds, got {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share of calls from 0 to 1 (0.2: one in five), got {text}")
    return value


def _faces(text: str) -> str:
    try:
        return ",".join(check_faces(text))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_command(commands: Any) -> argparse.ArgumentParser:
    """Add ``sandbox`` to the ``mlops-nb`` command's subcommands (see :mod:`mlops_nb.cli`)."""
    sandbox = commands.add_parser(
        "sandbox", help="run a local MLOps-compatible gateway with its own login, until Ctrl-C",
        description="Run a local gateway that speaks the H2O MLOps API, with its own OpenID provider "
                    "(demo users alice/alice and bob/bob) and a SQLite database.")
    sandbox.add_argument("--host", default="127.0.0.1",
                         help="address to listen on (default: 127.0.0.1, this machine only)")
    sandbox.add_argument("--port", type=_port, default=DEFAULT_PORT,
                         help=f"port to listen on; 0 takes any free port (default: {DEFAULT_PORT})")
    sandbox.add_argument("--db", default=str(default_db_path()),
                         help="SQLite file for data, accounts and keys; ':memory:' keeps nothing "
                              "(default: %(default)s)")
    sandbox.add_argument("--data", type=_data, default="demo", metavar="demo|empty|scale:N",
                         help="'demo' fills a new database with example projects, models and deployments; "
                              "'scale:N' with N generated projects and N experiments, written in bulk "
                              "(default: demo)")
    sandbox.add_argument("--token-ttl", type=_positive, default=300, metavar="SECONDS",
                         help="lifetime of access tokens (default: 300)")
    sandbox.add_argument("--revoke-refresh-tokens", action="store_true",
                         help="a refresh token works once: each refresh returns the next one (like Keycloak's "
                              "'Revoke Refresh Token')")
    sandbox.add_argument("--latency", type=_latency, default=0, metavar="MS",
                         help="add MS milliseconds to every gateway call, to feel a remote gateway (default: 0)")
    sandbox.add_argument("--faults", type=_share, default=0.0, metavar="RATE",
                         help="fail this share of API calls as a flaky network does: 503, 429 with Retry-After, "
                              "connection dropped before or after the call is handled (default: 0, none)")
    sandbox.add_argument("--fault-seed", type=int, default=None, metavar="N",
                         help="seed for --faults, for a repeatable sequence of failures")
    sandbox.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate (and its chain)")
    sandbox.add_argument("--tls-key", metavar="PEM", help="the private key of --tls-cert")
    sandbox.add_argument("--tls-ca", metavar="PEM",
                         help="the CA file clients should trust (default: the --tls-cert file)")
    sandbox.add_argument("--durable", action="store_true",
                         help="sync every write to disk, so acknowledged writes survive an OS crash or power "
                              "loss too (SQLite synchronous=FULL; slower writes)")
    sandbox.add_argument("--faces", type=_faces, default=",".join(FACES), metavar="legacy|workspaces|legacy,workspaces",
                         help="the APIs to answer: 'legacy' (projects; h2o-mlops 1.0), 'workspaces' (MLOps 1.0 and "
                              "later; h2o-mlops 1.4+), or both, over the same data (default: both)")
    sandbox.set_defaults(run=run)
    return sandbox


def _export(name: str, value: str) -> str:
    return f"export {name}={shlex.quote(value)}"


def _banner(sandbox: Sandbox, data: str) -> str:
    assert sandbox.idp is not None  # the sandbox is running
    alice = sandbox.connection_constants("alice")
    issuer = sandbox.issuer
    confidential_token = sandbox.idp.issue_refresh_token("alice", CONFIDENTIAL_CLIENT_ID)
    secret = sandbox.idp.client_secret(CONFIDENTIAL_CLIENT_ID) or ""
    lines = [
        f"mlops_nb sandbox: gateway at {sandbox.gateway_url} (open it for the list of routes)",
        f"  database: {sandbox.db} (--data {data})",
        f"  issuer:   {issuer}",
        f"  faces:    {', '.join(sandbox.faces)}"
        + (f" (workspaces API's authz gateway: {sandbox.authz_gateway_url})" if "workspaces" in sandbox.faces else ""),
        *([f"  latency:  {sandbox.latency_ms:g} ms added to every gateway call"] if sandbox.latency_ms else []),
        "",
        "# alice (password: alice), the four constants of connection.py:",
        *(_export(name, value) for name, value in alice.items()),
        "# bob (password: bob) shares the 'Credit risk' project as an editor; his refresh token:" if data == "demo"
        else "# bob (password: bob); his refresh token:",
        "# " + _export("REFRESH_TOKEN", sandbox.refresh_token("bob")),
        "# a confidential client, for code that sends a client secret (with alice's refresh token for it):",
        "# " + " ".join([_export("CLIENT_ID", CONFIDENTIAL_CLIENT_ID), f"CLIENT_SECRET={shlex.quote(secret)}",
                         f"REFRESH_TOKEN={shlex.quote(confidential_token)}"]),
        "# code written for H2O AI Cloud (h2o_mlops.Client() with no arguments) finds the sandbox by discovery:",
        "# " + _export("H2O_CLOUD_ENVIRONMENT", sandbox.gateway_url) + ' H2O_CLOUD_CLIENT_PLATFORM_TOKEN="$REFRESH_TOKEN"',
        *([f"# h2o-mlops 1.4 and later (the workspaces API): h2o_mlops.Client(h2o_cloud_url={sandbox.gateway_url!r}, "
           "refresh_token=REFRESH_TOKEN)"] if "workspaces" in sandbox.faces else []),
        "",
        *([f"# HTTPS: trust {sandbox.tls_ca} (ca_bundle={sandbox.tls_ca!r}, or export "
           f"MLOPS_AUTH_CA_FILE_OVERRIDE={shlex.quote(str(sandbox.tls_ca))})"] if sandbox.tls_cert else []),
        *([f"# faults: {sandbox.fault_rate:g} of API calls fail (seed {sandbox.fault_seed})"] if sandbox.faults else []),
        "# Or sign in with a browser (device login), as alice/alice or bob/bob:",
        "#   import mlops_nb",
        f"#   login = mlops_nb.DeviceLogin.from_issuer({issuer!r}, {sandbox.client_id!r}).start()",
        "#   print(login.verification_uri_complete)  # open it, sign in, approve",
        f"#   client = mlops_nb.Client({sandbox.gateway_url!r}, login.poll())",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        sandbox = Sandbox(host=args.host, port=args.port, db=args.db, data=args.data, token_ttl=args.token_ttl,
                          revoke_refresh_token_on_use=args.revoke_refresh_tokens, faults=args.faults,
                          fault_seed=args.fault_seed, tls_cert=args.tls_cert, tls_key=args.tls_key,
                          tls_ca=args.tls_ca, durable=args.durable,
                          latency_ms=args.latency, faces=args.faces)
    except ValueError as e:
        print(f"mlops-nb sandbox: {e}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    # SIGTERM (a service manager, `kill`) stops as cleanly as Ctrl-C does.
    previous_handler = signal.signal(signal.SIGTERM, request_stop)
    try:
        try:
            sandbox.start()
        except (RuntimeError, OSError) as e:
            print(f"mlops-nb sandbox: {e}", file=sys.stderr)
            return 1
        print(_banner(sandbox, args.data), flush=True)
        # A timeout keeps the wait interruptible by Ctrl-C on every platform.
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        signal.signal(signal.SIGTERM, previous_handler)
    print("mlops_nb sandbox stopped.", flush=True)
    return 0
