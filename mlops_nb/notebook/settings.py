"""The notebook layer's settings, kept in one traitlets object.

``mlops_nb.notebook.settings.settings`` is the only instance; change it in place
(``settings.max_rows = 200``) and the next display picks the value up. Each trait
is tagged ``config=True`` so that a configurable (``%config MLOps.max_rows = 200``)
can mirror it.
"""

from __future__ import annotations

from typing import Any

from traitlets import Bool, Float, HasTraits, Int, TraitError, validate

__all__ = ["Settings", "settings", "MAX_CONCURRENT_CALLS"]

# A client keeps this many connections to its gateway by default (wire.transport's
# DEFAULT_MAX_CONNECTIONS, not imported: it would load requests); more calls at once than a
# client has connections would open connections only to throw them away.
MAX_CONCURRENT_CALLS = 32


class Settings(HasTraits):
    """How list results are fetched and shown."""

    interactive_tables = Bool(
        True,
        help="Show DataFrames from list calls as interactive (itables) tables; "
        "False shows a static HTML table. Other DataFrames are never affected.",
    ).tag(config=True)
    max_rows = Int(
        1000,
        help="At most this many rows of a list result are put into its table (the frame keeps all rows).",
    ).tag(config=True)
    max_columns = Int(
        10,
        help="A table shows at most this many columns of a wider frame, leading with its name, state, "
        "project, runtime, times and id, and says how many more there are (the frame keeps them all). "
        "0 shows every column.",
    ).tag(config=True)
    page_size = Int(
        1000,
        help="Entities asked for per call by list_all when no page_size is given (servers may cap it).",
    ).tag(config=True)
    timeout = Float(
        60.0,
        help="Seconds an HTTP call of a new mlops_nb.Client may take, when the client is not given one.",
    ).tag(config=True)
    retries = Bool(
        True,
        help="New mlops_nb.Client objects send read-only calls again after 429/502/503/504 answers and "
        "lost connections (writes only when nothing was sent); False sends every call once.",
    ).tag(config=True)
    retry_deadline = Float(
        30.0,
        help="Seconds within which a new mlops_nb.Client retries one call (waits and attempts together).",
    ).tag(config=True)

    concurrent_calls = Int(
        8,
        help="Calls helpers that fan out over projects (mlops_nb.all_deployments, %mlops deployments) "
        f"make at once, over the client's connections; 1 makes them one after another, at most "
        f"{MAX_CONCURRENT_CALLS} (and no more than a client's max_connections).",
    ).tag(config=True)

    @validate("concurrent_calls")
    def _bounded_calls(self, proposal: Any) -> int:
        if not 1 <= proposal["value"] <= MAX_CONCURRENT_CALLS:
            raise TraitError(f"concurrent_calls must be 1 to {MAX_CONCURRENT_CALLS} (the connections a client "
                             f"keeps to its gateway by default), got {proposal['value']}")
        return proposal["value"]

    @validate("max_rows", "page_size")
    def _positive(self, proposal: Any) -> int:
        if proposal["value"] < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1, got {proposal['value']}")
        return proposal["value"]

    @validate("max_columns")
    def _not_negative(self, proposal: Any) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"max_columns must be 0 (every column) or more, got {proposal['value']}")
        return proposal["value"]

    @validate("timeout", "retry_deadline")
    def _positive_seconds(self, proposal: Any) -> float:
        if proposal["value"] <= 0:
            raise TraitError(f"{proposal['trait'].name} must be positive (seconds), got {proposal['value']}")
        return proposal["value"]


settings = Settings()
