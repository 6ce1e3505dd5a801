"""The notebooks in ``notebooks/``: each runs top to bottom in a python3 kernel exactly as
committed (no edits, no network: the embedded sandbox serves them), and each is committed
without outputs.

A notebook runs from a copy in a temporary directory (also the kernel's working directory),
so a run writes nothing into the repository.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
STRIP_SCRIPT = ROOT / "scripts" / "strip_notebooks.py"

# A cell may take this long on a loaded 2-core machine (the first one starts the sandbox).
CELL_TIMEOUT = 180

# What a reader must see in each notebook's outputs (text/html or text/plain), beyond "no errors".
EXPECTED_OUTPUT = {
    "quickstart": ["application/vnd.jupyter.widget-view+json", "mlops-nb-card", "alice@example.com",
                   "mlops-nb-interactive", "Credit risk", "Customer churn", "HEALTHY", ">healthy</span>",
                   "genmodel could not load the H2O-3 MOJO"],
    "explore_projects": ["Credit risk", "GBM tuned", "<svg", "list_all: 3 rows", "HEALTHY", "metadata.auc"],
    "magics": ["Sandbox gateway at", "Fraud detection", "Churn v2", "dai_mojo_runtime",
               "Stopped the sandbox"],
    # The live status ended as the healthy card; the scores match the model; the plots are there.
    "deploy_a_model": ["held-out accuracy", "mlops-nb-card", ">healthy</span>", "same as the local model: 100%",
                       "image/png", "color_intensity", "wine-classifier", "scorer random forest#0"],
    # The MOJO scorer served H2O-3's own predictions; ingest read the MOJO; drift is plotted.
    "deploy_an_h2o_model": ["held-out accuracy", "Gradient Boosting Machine", "Multinomial", ">healthy</span>",
                            "same labels as H2O-3's own predict: 100%", "image/png", "color_intensity",
                            "scorer wine gbm#0"],
}
# Notebooks that train with H2O-3 (the h2o extra, Java) carry the mojo marker.
RUN_PARAMS = [pytest.param(p, marks=pytest.mark.mojo) if p.stem == "deploy_an_h2o_model" else p for p in NOTEBOOKS]


def _strip_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("strip_notebooks", STRIP_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _output_text(notebook: Any) -> str:
    """Everything the outputs show, as one string (mime types included, for widget outputs)."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            for mime, data in output.get("data", {}).items():
                parts.append(mime)
                parts.append(data if isinstance(data, str) else json.dumps(data))
    return "\n".join(parts)


def test_the_notebooks_are_there() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "explore_projects.ipynb", "magics.ipynb",
                                           "deploy_a_model.ipynb"}


@pytest.mark.parametrize("committed", RUN_PARAMS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(committed: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    before = committed.read_bytes()
    work = tmp_path / committed.name
    shutil.copy(committed, work)
    # The kernel inherits this environment: a developer's real MLOps settings must not leak in.
    for name in ("H2O_MLOPS_GATEWAY", "TOKEN_ENDPOINT", "CLIENT_ID", "REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_NB_CONFIG", str(tmp_path / "no-config.json"))

    notebook = nbformat.read(work, as_version=4)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT,
                                     startup_timeout=120, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error

    warnings = [f"cell {cell.get('id')}: {output.get('text', '')}"
                for cell in notebook.cells for output in cell.get("outputs", [])
                if output.get("output_type") == "stream" and output.get("name") == "stderr"]
    assert not warnings, "the notebook wrote to stderr:\n" + "\n".join(warnings)
    shown = _output_text(notebook)
    missing = [text for text in EXPECTED_OUTPUT.get(committed.stem, []) if text not in shown]
    assert not missing, f"{committed.name}: outputs lack {missing}"
    assert committed.read_bytes() == before, "running the copy changed the committed notebook"


@pytest.mark.parametrize("committed", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(committed: Path) -> None:
    found = _strip_module().problems(json.loads(committed.read_text(encoding="utf-8")))
    assert not found, f"{committed.name}: {', '.join(found)}; run python scripts/strip_notebooks.py"


def test_strip_check_fails_on_outputs_and_strip_fixes_it(tmp_path: Path) -> None:
    notebook = json.loads((NOTEBOOK_DIR / "quickstart.ipynb").read_text(encoding="utf-8"))
    code = next(c for c in notebook["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]
    code["execution_count"] = 3
    code["metadata"]["execution"] = {"iopub.status.busy": "2024-01-01T00:00:00Z"}
    notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    dirty = tmp_path / "dirty.ipynb"
    dirty.write_text(json.dumps(notebook), encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(STRIP_SCRIPT), *args], capture_output=True, text=True,
                              timeout=60)

    check = run("--check", str(dirty))
    assert check.returncode == 1
    for words in ("outputs", "execution counts", "run-time metadata", "widget state"):
        assert words in check.stdout
    assert run(str(dirty)).returncode == 0
    assert run("--check", str(dirty)).returncode == 0
    stripped = json.loads(dirty.read_text(encoding="utf-8"))
    assert "widgets" not in stripped["metadata"]
    assert all(c.get("outputs", []) == [] for c in stripped["cells"])
    # Only what running left behind goes: the sources are untouched.
    assert [c["source"] for c in stripped["cells"]] == [c["source"] for c in notebook["cells"]]


def test_strip_check_passes_on_the_repository() -> None:
    result = subprocess.run([sys.executable, str(STRIP_SCRIPT), "--check"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
