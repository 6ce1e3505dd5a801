"""Fixtures shared by the sandbox tests: one running sandbox per test module, and its two demo users."""

from __future__ import annotations

from collections.abc import Iterator
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
def h2o_models() -> Iterator[dict[str, Any]]:
    """A binomial, a multinomial and a regression H2O-3 model (tests/h2o3.py), trained in one h2o
    cluster for the whole session, which is shut down at its end."""
    pytest.importorskip("h2o", reason="the H2O-3 tests need the h2o extra: pip install -e '.[h2o]'")
    from tests.h2o3 import h2o_cluster, train

    with h2o_cluster() as h2o:
        yield {kind: train(h2o, kind) for kind in ("binomial", "multinomial", "regression")}
