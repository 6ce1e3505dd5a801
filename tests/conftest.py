"""Fixtures shared by the sandbox tests: one running sandbox per test module, and its two demo users;
and ``--needs FILE``, with which ``scripts/test.sh`` learns what the selected tests need installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_nb.sandbox import Sandbox


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox on a free loopback port, with an empty file database of its own."""
    db = tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3"
    with Sandbox(db=str(db), data="empty", port=0) as sb:
        yield sb


@pytest.fixture(scope="module")
def alice(sandbox: Sandbox) -> Any:
    return sandbox.client("alice")


@pytest.fixture(scope="module")
def bob(sandbox: Sandbox) -> Any:
    return sandbox.client("bob")


@pytest.fixture(scope="session")
def legacy_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The python of a virtual environment with the official clients (h2o-mlops==1.0.1), made once."""
    from tests.legacy import environment

    return environment.legacy_python(tmp_path_factory.mktemp("legacy") / "venv")


@pytest.fixture(scope="session")
def workspaces_python(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The python of a virtual environment with the newest official client (h2o-mlops==1.6.5), made once."""
    from tests.legacy import environment

    return environment.workspaces_python(tmp_path_factory.mktemp("workspaces") / "venv")


@pytest.fixture(scope="session")
def h2o_models() -> Iterator[dict[str, Any]]:
    """A binomial, a multinomial and a regression H2O-3 model (tests/h2o3.py), trained in one h2o
    cluster for the whole session, which is shut down at its end."""
    pytest.importorskip("h2o", reason="the H2O-3 tests need the h2o extra: pip install -e '.[h2o]'")
    from tests.h2o3 import h2o_cluster, train

    with h2o_cluster() as h2o:
        yield {kind: train(h2o, kind) for kind in ("binomial", "multinomial", "regression")}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--needs", metavar="FILE",
                     help="write to FILE what the selected tests need beyond Python packages (one a line: "
                          "chromium for browser tests, java for mojo ones); scripts/test.sh uses it with "
                          "--collect-only")


def pytest_collection_finish(session: pytest.Session) -> None:
    needs_file = session.config.getoption("needs")
    if needs_file:
        needs = [need for need, marker in (("chromium", "browser"), ("java", "mojo"))
                 if any(item.get_closest_marker(marker) for item in session.items)]
        Path(needs_file).write_text("".join(f"{need}\n" for need in needs), encoding="utf-8")
