"""Names found across every project the user may see, past the first page of ``list_projects``.

A sandbox with 101 projects: one on the second page holds the experiment and the deployment the
helpers are asked for by name (no project given).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import mlops_nb
from mlops_nb.notebook.lookup import deployment_id, experiment_id
from mlops_nb.sandbox import Sandbox
from tests.deploying import deploy, experiment_with, wait_for_state, zip_of

PAGE = 100  # the sandbox's default page size


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("nb-lookup") / "s.sqlite3"), data="empty") as sb:
        yield sb


@pytest.fixture(scope="module")
def haystack(alice: Any) -> dict[str, str]:
    """Ids of the far project, its experiment "needle" and its deployment "needle-served" (FAILED: a DAI
    pipeline, which the sandbox does not run)."""
    made = {alice.storage.project.create_project(project={"display_name": f"project {i:03}"}).project.id
            for i in range(PAGE + 1)}
    first_page = {p.id for p in alice.storage.project.list_projects().project}
    assert len(first_page) == PAGE
    [project] = made - first_page
    mojo = zip_of({"mojo-pipeline/pipeline.mojo": b"not a real pipeline"})
    experiment = experiment_with(alice, project, mojo, "dai/mojo_pipeline", name="needle")
    served = deploy(alice, project, experiment, "dai/mojo_pipeline", display_name="needle-served").id
    wait_for_state(alice, served, "FAILED", timeout=60)
    return {"project": project, "experiment": experiment, "deployment": served}


def test_an_experiment_on_the_second_page_of_projects_is_found_by_name(alice: Any, haystack: dict[str, str]) -> None:
    assert experiment_id(alice, "needle") == haystack["experiment"]
    registered = mlops_nb.register_model(alice, "needle", "needle-model")
    assert registered.version.experiment_id == haystack["experiment"]
    assert registered.model.project_id == haystack["project"]


def test_a_deployment_on_the_second_page_of_projects_is_found_by_name(alice: Any, haystack: dict[str, str]) -> None:
    assert deployment_id(alice, "needle-served") == haystack["deployment"]
    with pytest.raises(mlops_nb.DeploymentFailed) as failed:
        mlops_nb.wait_for_healthy(alice, "needle-served", timeout=30)
    assert failed.value.deployment_id == haystack["deployment"]


def test_names_in_several_projects_or_none_say_so(alice: Any, haystack: dict[str, str]) -> None:
    first = alice.storage.project.list_projects().project[0].id
    twin = experiment_with(alice, first, zip_of({"x": b"x"}), "dai/mojo_pipeline", name="needle")
    try:
        with pytest.raises(mlops_nb.AmbiguousName, match="2 experiments are named 'needle' in the projects you may "
                                                         "see") as ambiguous:
            mlops_nb.deploy(alice, "needle")
        assert set(ambiguous.value.candidates) == {twin, haystack["experiment"]}
    finally:
        alice.storage.experiment.delete_experiment(id=twin)
    with pytest.raises(mlops_nb.NameNotFound, match="no deployment has the id or name 'hay' in the projects"):
        deployment_id(alice, "hay")
