"""Waiting for a deployment to serve: :func:`wait_for_healthy`, with a live display.

In a notebook one output updates in place (each state the deployment went through, how long it
stayed, what the deployer said) and ends as the deployment's card; in a terminal, a line per
state change.
"""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import Sequence
from typing import Any

from mlops_nb.notebook.client import known_deployment_name
from mlops_nb.notebook.generations import operations
from mlops_nb.notebook.logs import log_lines
from mlops_nb.notebook.lookup import deployment_id
from mlops_nb.notebook.progress import in_kernel
from mlops_nb.wire.errors import MLOpsError, NotFound
from mlops_nb.wire.messages import Message

__all__ = ["DeploymentFailed", "DeploymentTimeout", "wait_for_healthy"]

LOG_LINES_IN_ERRORS = 20


class DeploymentFailed(MLOpsError):
    """The deployment ended FAILED. ``reason`` is the status message, ``logs`` its last log lines."""

    def __init__(self, deployment_id: str, reason: str, logs: Sequence[str] = ()) -> None:
        self.deployment_id, self.reason, self.logs = deployment_id, reason, list(logs)
        tail = ("\nlast log lines:\n  " + "\n  ".join(self.logs)) if self.logs else ""
        super().__init__(f"deployment {deployment_id} FAILED: {reason}{tail}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.deployment_id, self.reason, self.logs))


class DeploymentTimeout(MLOpsError, TimeoutError):
    """The deployment was not HEALTHY in time; it carries on, and ``state`` is where it was."""

    def __init__(self, deployment_id: str, state: str, message: str, timeout: float) -> None:
        self.deployment_id, self.state, self.status_message, self.timeout = deployment_id, state, message, timeout
        super().__init__(f"deployment {deployment_id} is still {state} after {timeout:g} s ({message}); it carries "
                         f"on: wait again with wait_for_healthy, or look at deployment_logs")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.deployment_id, self.state, self.status_message, self.timeout))


def _status(client: Any, deployment: str) -> Message:
    return operations(client).status(deployment)


class _Timeline:
    """The states a deployment went through while we watched, for the live display."""

    def __init__(self, deployment: str, name: str = "") -> None:
        self.deployment = deployment
        # What a person reads: "wine (1f0e...)" or, with no name, the id.
        self.label = f"{name} ({deployment})" if name else deployment
        self.started = time.monotonic()
        self.states: list[tuple[str, float, str]] = []  # (state, monotonic time entered, message)

    def see(self, status: Message) -> bool:
        state, message = str(status.state), status.message or ""
        if self.states and self.states[-1][0] == state:
            if self.states[-1][2] != message:
                self.states[-1] = (state, self.states[-1][1], message)
            return False
        self.states.append((state, time.monotonic(), message))
        return True

    def html(self) -> str:
        from mlops_nb.notebook.display import state_badge

        now = time.monotonic()
        rows = []
        for i, (state, since, message) in enumerate(self.states):
            until = self.states[i + 1][1] if i + 1 < len(self.states) else now
            rows.append(f"<tr><td>{state_badge(state)}</td><td style='text-align:right'>{until - since:.1f} s</td>"
                        f"<td style='text-align:left'>{html.escape(message)}</td></tr>")
        return ("<div class='mlops-nb-wait'><b>deployment " + html.escape(self.label) + "</b>, waiting "
                f"{now - self.started:.0f} s<table>{''.join(rows)}</table></div>")

    def line(self) -> str:
        state, since, message = self.states[-1]
        return f"[{since - self.started:6.1f} s] {self.label}: {state} {message}".rstrip()


def _log_tail(client: Any, deployment: str) -> list[str]:
    with contextlib.suppress(MLOpsError):
        return log_lines(client, deployment, LOG_LINES_IN_ERRORS)
    return []


def wait_for_healthy(client: Any, deployment: Message | str, timeout: float = 300, interval: float = 1.0, *,
                     project: Message | str | None = None) -> Message:
    """Wait until the deployment is HEALTHY; returns its status (``DeployDeploymentStatus``, or
    ``V2DeploymentStatus`` on the workspaces generation of the API).

    In a notebook one output updates in place: each state the deployment went through, how long
    it stayed, what the deployer said; it ends as the deployment's card (so the status returned,
    as a cell's value, adds no second card). The deployment is named by its name. In a terminal, a line
    per state change. FAILED raises :class:`DeploymentFailed` with the reason and the last log
    lines; no HEALTHY within ``timeout`` seconds raises :class:`DeploymentTimeout` (also a
    ``TimeoutError``). Ctrl-C (interrupting the kernel) stops waiting and leaves the deployment
    alone: the last status is returned.
    """
    if timeout <= 0 or interval <= 0:
        raise ValueError(f"timeout and interval must be positive, got {timeout} and {interval}")
    target = deployment_id(client, deployment, project)
    timeline = _Timeline(target, getattr(deployment, "display_name", "") or known_deployment_name(target) or "")
    live = in_kernel()
    handle = None
    if live:
        from IPython.display import HTML, display

        handle = display(HTML(timeline.html()), display_id=True)
    deadline = time.monotonic() + timeout
    status = _status(client, target)
    try:
        while True:
            changed = timeline.see(status)
            if handle is not None:
                handle.update(HTML(timeline.html()))
            elif changed:
                print(timeline.line(), flush=True)
            state = str(status.state)
            if state == "HEALTHY":
                break
            if state == "FAILED":
                raise DeploymentFailed(target, status.message or "no reason given", _log_tail(client, target))
            if time.monotonic() >= deadline:
                raise DeploymentTimeout(target, state, status.message or "", timeout)
            time.sleep(min(interval, max(deadline - time.monotonic(), 0.01)))
            status = _status(client, target)
    except KeyboardInterrupt:
        note = f"stopped waiting; deployment {target} is {status.state} and carries on"
        if handle is not None:
            handle.update(HTML(timeline.html() + f"<p>{html.escape(note)}</p>"))
        else:
            print(note, flush=True)
        return status
    if handle is not None:
        from mlops_nb.notebook.display import shown_above

        handle.update(_card(client, target, status))
        shown_above(status)
    return status


def _card(client: Any, deployment: str, status: Message) -> Any:
    """The deployment's card (the deployer's view, with the status the client just saw)."""
    from IPython.display import HTML

    try:
        shown = operations(client).deployment(deployment)
    except (LookupError, NotFound):
        shown = status
    return HTML(shown._repr_html_() or html.escape(repr(shown)))
