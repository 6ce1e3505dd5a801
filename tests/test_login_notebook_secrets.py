"""A notebook that logs in through the form keeps no token: not in its saved file, not in its HTML export.

The notebook is executed by nbclient in a real kernel, which stores the widget state
in the notebook (as JupyterLab does when it saves widget state), against a sandbox
served from this process over loopback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from mlops_nb.sandbox import Sandbox

nbconvert = pytest.importorskip("nbconvert")

REPO = Path(__file__).resolve().parent.parent
# Every token the sandbox issues is a JWT (header.payload.signature, base64url).
JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}")
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("secrets") / "s.sqlite3"), data="demo") as sandbox:
        yield sandbox


def _notebook(sb: Sandbox, token_file: Path) -> nbformat.NotebookNode:
    cells = [
        "import mlops_nb\n"
        f"form = mlops_nb.login({sb.gateway_url!r}, {sb.token_endpoint!r}, {sb.client_id!r}, background=False)\n"
        "form",
        # What pasting does: the browser sets the password field's value.
        f"form.refresh_token.value = open({str(token_file)!r}).read().strip()",
        "form.login_button.click()\nprint(form.user.username, form.error)",
        "%load_ext mlops_nb\n%mlops whoami",
        "%mlops projects",
    ]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])


def test_no_token_in_the_saved_notebook_or_its_html(sb: Sandbox, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    token = sb.refresh_token("alice")
    assert JWT.fullmatch(token)
    token_file = tmp_path / "token.txt"
    token_file.write_text(token)
    # The kernel imports this checkout, and reads nothing of the user's own login settings.
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    for name in ("REFRESH_TOKEN", "H2O_MLOPS_GATEWAY", "TOKEN_ENDPOINT", "CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))

    nb = _notebook(sb, token_file)
    NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    assert nb.cells[2].outputs[0]["text"] == "alice None\n"
    whoami = nb.cells[3].outputs[0]["data"]
    assert "alice" in whoami["text/html"]
    assert "Credit risk" in nb.cells[4].outputs[0]["data"]["text/html"]
    # The widget state was stored (else this test would prove nothing), the password field empty in it.
    models = nb.metadata["widgets"][WIDGET_STATE]["state"].values()
    passwords = [m["state"] for m in models if m["model_name"] == "PasswordModel"]
    assert passwords and all(p.get("value", "") == "" for p in passwords)

    path = tmp_path / "login.ipynb"
    nbformat.write(nb, path)
    saved = path.read_text(encoding="utf-8")
    assert "PasswordModel" in saved
    assert token not in saved
    assert not JWT.search(saved), "a token (refresh or access) is in the saved notebook"

    html, _ = nbconvert.HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    assert WIDGET_STATE in html and "PasswordModel" in html
    assert token not in html
    assert not JWT.search(html), "a token (refresh or access) is in the HTML export"
