"""Tab completion of ``%mlops`` and ``%%mlops`` lines, which never keeps the kernel waiting.

The grammar (commands, their options, which take a project or a deployment) is the magic's,
handed over as a :class:`Grammar`; this module only matches it against the line. Project and
deployment names come from the gateway, which can be slow or away: a keystroke gets what was
fetched last, waiting for a fetch under way at most ``KEYSTROKE_WAIT`` seconds, and a fetch runs
in a background thread (one at a time) with a short timeout and no retries, when nothing was
fetched for the current login or what was is older than ``REFRESH_SECONDS``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from IPython.core.completer import CompletionContext, SimpleCompletion, context_matcher

from mlops_nb.api import API, CATALOGS
from mlops_nb.notebook.frames import list_all
from mlops_nb.notebook.generations import entity_id, operations
from mlops_nb.notebook.session import NotLoggedIn, current_client
from mlops_nb.notebook.settings import settings
from mlops_nb.wire.errors import MLOpsError

__all__ = ["Grammar", "NameCache", "matcher"]

KEYSTROKE_WAIT = 0.2  # the longest a keystroke waits for names (seconds)
FETCH_TIMEOUT = 5.0  # per HTTP attempt of a background fetch (seconds); no retries
REFRESH_SECONDS = 30.0  # names older than this are fetched again (in the background)

# A line that runs the magic, maybe assigning its result: "%mlops ...", "df = %mlops ...", "%%mlops ...".
_MAGIC_LINE = re.compile(r"^\s*(?:[A-Za-z_]\w*\s*=\s*)?(?P<magic>%%?mlops)(?P<rest>\s.*)?$")


class NameCache:
    """Display names of the current login for completion, served from memory, fetched in the background."""

    def __init__(self, fetch: Callable[[Any], Iterable[str]]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._cached: tuple[Any, float, list[str]] = (None, 0.0, [])  # (client, when fetched, names)
        self._fetching: threading.Thread | None = None

    def names(self) -> list[str]:
        """What was fetched for the current login ([] when nobody is logged in or nothing was fetched
        yet); starts a fetch when due and waits for it at most ``KEYSTROKE_WAIT`` seconds."""
        try:
            client = current_client()
        except NotLoggedIn:
            return []
        started = time.monotonic()
        with self._lock:
            cached_client, fetched, _ = self._cached
            due = cached_client is not client or started - fetched >= REFRESH_SECONDS
            if due and self._fetching is None:
                self._fetching = threading.Thread(target=self._refresh, args=(client,), daemon=True,
                                                  name="mlops-nb-completion")
                self._fetching.start()
            fetching = self._fetching
        if fetching is not None:
            fetching.join(max(0.0, KEYSTROKE_WAIT - (time.monotonic() - started)))
        cached_client, _, names = self._cached
        return names if cached_client is client else []

    def settled(self, timeout: float) -> bool:
        """Wait until no fetch is under way (at most ``timeout`` seconds); whether none is."""
        fetching = self._fetching
        if fetching is not None:
            fetching.join(timeout)
        return self._fetching is None

    def _refresh(self, client: Any) -> None:
        try:
            quick = client.with_options(timeout=FETCH_TIMEOUT, retry=False)
            try:
                names = sorted(set(self._fetch(quick)))
            finally:
                quick.close()
        except MLOpsError:
            names = None  # the gateway failed: keep what was there, try again on a later keystroke
        with self._lock:
            if names is not None:
                self._cached = (client, time.monotonic(), names)
            self._fetching = None


def _project_names(client: Any) -> Iterable[str]:
    return list_all(operations(client).list_method("project"), limit=settings.max_rows,
                    progress=False)["display_name"].dropna()


def _deployment_names(client: Any) -> Iterator[str]:
    ops = operations(client)
    for project in list_all(ops.list_method("project"), limit=settings.max_rows, progress=False).entities:
        yield from list_all(ops.list_method("deployment"), **ops.scope("deployment", entity_id(project)),
                            limit=settings.max_rows, progress=False)["display_name"].dropna()


project_names = NameCache(_project_names)
deployment_names = NameCache(_deployment_names)


@dataclass(frozen=True)
class Grammar:
    """What the magic's argument parser accepts, as completion needs it."""

    commands: Sequence[str]
    options: Callable[[], dict[str, list[str]]]  # each command's long options
    project_commands: Sequence[str]  # commands whose first argument is a project
    deployment_commands: Sequence[str]  # ... a deployment (``score``: then a DataFrame variable)


def _first_argument_done(text: str) -> bool:
    """Whether the first argument of ``text`` is complete: a closed quote, or a word and a space."""
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        return end != -1 and text[end + 1:end + 2].isspace()
    return bool(re.search(r"\s", text))


def _frame_variables() -> list[str]:
    """The names of the DataFrames in the user's namespace (what ``%mlops score`` takes)."""
    from IPython import get_ipython

    shell = get_ipython()
    namespace = shell.user_ns if shell is not None else {}
    return sorted(n for n, v in namespace.items() if isinstance(v, pd.DataFrame) and not n.startswith("_"))


def _candidates(grammar: Grammar, magic: str, rest: str) -> tuple[str, list[str]]:
    """(the text being completed, which ends ``rest``; what it may become) for a magic's arguments."""
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", rest)]
    new_word = not rest or rest[-1].isspace()
    typed = "" if new_word else words[-1][1]
    done = [w for _, w in (words if new_word else words[:-1])]
    method_names = [m.qualified_name for m in API.methods]
    if magic == "%%mlops":
        return typed, method_names if not done else []
    if not done:
        return typed, list(grammar.commands)
    command, arguments = done[0], done[1:]
    if typed.startswith("-"):
        return typed, grammar.options().get(command, [])
    if command == "call":
        if not arguments:
            return typed, method_names
        try:
            request = API.method(arguments[0]).request_message
        except KeyError:
            return typed, []
        return typed, [f"{f.name}=" for f in API.messages.get(request or "", ())]
    if command == "runtimes" and not arguments:
        types = {a["artifact_type"] for a in CATALOGS.artifacts} | {r["model_type"] for r in CATALOGS.runtimes}
        return typed, sorted(types)
    if command in grammar.deployment_commands and not any(a.startswith("-") for a in arguments):
        after = rest[words[1][0]:] if len(words) > 1 else ""
        if command == "score" and _first_argument_done(after):
            return typed, _frame_variables()
        quote = after[:1] if after[:1] in ("'", '"') else ""
        return after, [f"{quote}{name}{quote}" for name in deployment_names.names()]
    if command in grammar.project_commands and not any(a.startswith("-") for a in arguments):
        # A display name may hold spaces: complete everything typed after the command.
        typed = rest[words[1][0]:] if len(words) > 1 else ""
        quote = typed[:1] if typed[:1] in ("'", '"') else ""
        return typed, [f"{quote}{name}{quote}" for name in project_names.names()]
    return typed, []


def matcher(grammar: Grammar) -> Callable[[CompletionContext], dict[str, Any]]:
    """An IPython completion matcher for ``%mlops`` and ``%%mlops`` lines of ``grammar``: commands,
    options, API method names, request fields, artifact types, project and deployment names."""

    @context_matcher()
    def complete_mlops(context: CompletionContext) -> dict[str, Any]:
        match = _MAGIC_LINE.match(context.text_until_cursor)
        if match is None or (match["magic"] == "%%mlops" and context.cursor_line != 0):
            return {"completions": []}
        typed, candidates = _candidates(grammar, match["magic"], match["rest"] or "")
        found = [SimpleCompletion(c, type="mlops") for c in candidates if c.startswith(typed)]
        # Suppress other matchers (Jedi would offer Python names); this matcher knows the whole grammar.
        return {"completions": found, "matched_fragment": typed, "suppress": True, "ordered": True}

    return complete_mlops
