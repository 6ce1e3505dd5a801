"""A deployment's log lines as a DataFrame: :func:`deployment_logs`."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from mlops_nb.notebook.frames import LOG_ATTR, utc_times
from mlops_nb.notebook.generations import operations
from mlops_nb.notebook.lookup import deployment_id
from mlops_nb.wire.messages import Message

__all__ = ["deployment_logs"]

_LOG_LINE = re.compile(r"^(?P<time>\d{4}-\d\d-\d\dT[\d:.]+(?:[Zz]|[+-]\d\d:\d\d)) \[(?P<source>[^\]]*)\] (?P<message>.*)$", re.S)


def deployment_logs(client: Any, deployment: Message | str, max_lines: int | None = None, filter: str = "", *,
                    project: Message | str | None = None) -> pd.DataFrame:
    """A deployment's log lines, oldest first: ``time`` (UTC), ``source``, ``message``.

    ``max_lines`` keeps the last ones; ``filter`` keeps those containing it. Lines not in the
    ``TIME [SOURCE] TEXT`` layout keep their text in ``message``. In a notebook the frame (and
    frames made from it, such as ``.tail()``) shows as a log: whole messages, left-aligned and
    wrapped, newest last.
    """
    target = deployment_id(client, deployment, project)
    rows = []
    for line in log_lines(client, target, max_lines, filter):
        match = _LOG_LINE.match(line)
        rows.append(match.groupdict() if match else {"time": None, "source": "", "message": line})
    logs = pd.DataFrame(rows, columns=["time", "source", "message"])
    logs["time"] = utc_times(logs["time"]).array
    logs[["source", "message"]] = logs[["source", "message"]].astype("string")
    logs.attrs[LOG_ATTR] = True
    return logs


def log_lines(client: Any, deployment: str, max_lines: int | None = None, filter: str = "") -> list[str]:
    """The deployment's log lines as the deployer sends them, oldest first: the last ``max_lines``
    (all of them when None) of those containing ``filter``."""
    return operations(client).log_lines(deployment, max_lines, filter)
