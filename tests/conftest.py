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
