"""``import mlops_nb`` loads only what it needs; everything else loads on first use, unchanged.

Each check runs in a fresh interpreter (``sys.executable``), where nothing was imported
before. How long an import takes is a benchmark's figure (benchmarks/bench_startup.py),
not a test's: these check which modules load, and that nothing visible changed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import mlops_nb
import mlops_nb.wire

# What `import mlops_nb` must not load: each is loaded by the first use of what needs it.
HEAVY = ["ipywidgets", "IPython", "yaml", "requests", "mlops_nb.notebook.display", "mlops_nb.notebook.magics",
         "mlops_nb.notebook.login", "mlops_nb.notebook.fanout", "mlops_nb.notebook.deploy",
         "mlops_nb.notebook.upload", "mlops_nb.notebook.waiting", "mlops_nb.notebook.scoring", "mlops_nb.notebook.logs",
         "mlops_nb.notebook.monitoring", "mlops_nb.wire.auth", "mlops_nb.sandbox", "mlops_nb.wire.workspaces",
         "mlops_nb.workspaces"]


def fresh(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON value as its last line."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_loads_none_of_the_heavy_parts() -> None:
    loaded = fresh(f"""
        import json, sys
        import mlops_nb
        print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
    """)
    assert loaded == []


@pytest.mark.parametrize(("name", "module"), [("TokenProvider", "requests"), ("login", "ipywidgets"),
                                            ("load_ipython_extension", "IPython"),
                                            ("all_deployments", "mlops_nb.notebook.fanout")])
def test_each_lazy_name_loads_its_module_on_first_use(name: str, module: str) -> None:
    seen = fresh(f"""
        import json, sys
        import mlops_nb
        before = {module!r} in sys.modules
        getattr(mlops_nb, {name!r})
        print(json.dumps([before, {module!r} in sys.modules, {name!r} in vars(mlops_nb)]))
    """)
    assert seen == [False, True, True]  # and kept, so the next use is a plain attribute


@pytest.mark.parametrize("package", [mlops_nb, mlops_nb.wire], ids=["mlops_nb", "mlops_nb.wire"])
def test_every_public_name_is_there_and_listed(package) -> None:
    listed = set(dir(package))
    for name in package.__all__:
        assert name in listed, name
        assert getattr(package, name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'nothing_of_the_kind'"):
        package.nothing_of_the_kind  # noqa: B018


def test_names_import_from_a_fresh_interpreter_as_before() -> None:
    seen = fresh("""
        import json
        from mlops_nb import (Client, DeviceLogin, OpenIDConfiguration, TokenProvider, all_deployments, discover,
                              load_ipython_extension, login, unload_ipython_extension)
        from mlops_nb.wire import TokenProvider as WireTokenProvider
        print(json.dumps([TokenProvider is WireTokenProvider, TokenProvider.__module__, login.__module__,
                          all_deployments.__module__, load_ipython_extension.__module__]))
    """)
    assert seen == [True, "mlops_nb.wire.auth", "mlops_nb.notebook.login", "mlops_nb.notebook.fanout",
                    "mlops_nb.notebook.magics"]


def test_cards_render_on_first_display_without_ipython() -> None:
    seen = fresh("""
        import json, sys
        import mlops_nb
        before = "mlops_nb.notebook.display" in sys.modules
        card = mlops_nb.StorageProject(id="p1", display_name="Churn")._repr_html_()
        plain = mlops_nb.StoragePagingRequest(page_size=5)._repr_html_()
        print(json.dumps([before, "mlops_nb.notebook.display" in sys.modules, card, plain]))
    """)
    before, after, card, plain = seen
    assert (before, after) == (False, True)
    assert 'class="mlops-nb-card"' in card and "Churn" in card
    assert plain is None  # a message without a card has no HTML, as before


def test_inside_ipython_the_import_installs_the_displays() -> None:
    seen = fresh("""
        import json
        import pandas as pd
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        import mlops_nb
        html = shell.display_formatter.formatters["text/html"].type_printers.get(pd.DataFrame)
        text = shell.display_formatter.formatters["text/plain"].lookup_by_type(mlops_nb.StorageProject)
        print(json.dumps([getattr(html, "mlops_nb", False), text.__module__]))
    """)
    assert seen == [True, "mlops_nb.notebook.display"]


def test_load_ext_in_a_fresh_shell() -> None:
    seen = fresh("""
        import json
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "mlops_nb")
        result = shell.run_cell("%mlops runtimes dai/mojo_pipeline", store_history=False)
        print(json.dumps(["mlops" in shell.magics_manager.magics["line"], len(result.result) > 0]))
    """)
    assert seen == [True, True]
