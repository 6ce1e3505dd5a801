"""The filter and sort language of list calls, shared by the Python API and ``%mlops``.

``list_all(client.storage.project.list_projects, where="display_name~churn", sort="-created_time")``
gives what ``%mlops projects --filter display_name~churn --sort -created_time`` gives. A condition
is ``FIELD=VALUE``, ``FIELD!=VALUE`` or ``FIELD~TEXT`` (contains); ``where`` takes one or a list,
all of which must hold. ``sort`` is ``FIELD`` (ascending) or ``-FIELD`` (descending). Values are
typed as the entity's field is (numbers, true/false, RFC 3339 times); a condition that does not
fit raises :class:`QueryError` (a ``ValueError``) saying why, before any call.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlops_nb.api import API, Field, Method
from mlops_nb.wire.messages import format_timestamp, parse_timestamp

__all__ = ["QueryError", "condition_field", "conditions", "filter_frame", "request_fields", "sort_frame"]

_CONDITION = re.compile(r"^(?P<field>[^=!~]+?)\s*(?P<op>!=|=|~)\s*(?P<value>.*)$")
_OPERATORS = {"=": "EQUAL_TO", "!=": "NOT_EQUAL_TO", "~": "CONTAINS"}


class QueryError(ValueError):
    """A ``where`` or ``sort`` that the language or the list method does not take."""


def conditions(where: str | Sequence[str] | None) -> list[str]:
    """``where`` as a list of conditions."""
    if where is None:
        return []
    return [where] if isinstance(where, str) else list(where)


def _parsed(condition: str) -> re.Match[str]:
    match = _CONDITION.match(condition) if isinstance(condition, str) else None
    if match is None:
        raise QueryError(f"a condition is FIELD=VALUE, FIELD!=VALUE or FIELD~TEXT, got {condition!r}")
    return match


def condition_field(condition: str) -> str:
    """The field a condition is about."""
    return _parsed(condition)["field"].strip()


def _value(field: Field | None, text: str, operator: str) -> dict[str, Any]:
    """A filter value typed as the field is (wire spelling); "contains" always compares text."""
    kind = None if field is None or operator == "~" else field.type
    try:
        if kind in ("int32", "int64"):
            return {"int64Value": str(int(text))}
        if kind == "double":
            return {"doubleValue": float(text)}
        if kind == "bool":
            if text.lower() not in ("true", "false"):
                raise ValueError("expected true or false")
            return {"boolValue": text.lower() == "true"}
        if kind == "timestamp":
            return {"timestampValue": format_timestamp(parse_timestamp(text))}
    except ValueError as e:
        raise QueryError(f"the condition value {text!r} does not fit {field.name} ({kind}): {e}") from None
    return {"stringValue": text}


def _filter(entity: str, where: Sequence[str]) -> dict[str, Any]:
    """A filter of one clause (its constraints all hold) in wire spelling, which storage and deployer share."""
    fields = {name: f for f in API.messages[entity] for name in (f.name, f.json)}
    constraints = []
    for condition in where:
        match = _parsed(condition)
        known = fields.get(match["field"].strip())
        constraints.append({"property": {"field": known.name if known else match["field"].strip()},
                            "operator": _OPERATORS[match["op"]],
                            "value": _value(known, match["value"], match["op"])})
    return {"query": {"clause": [{"propertyConstraint": constraints}]}}


def _sorting(sort: str) -> dict[str, Any]:
    field = sort.lstrip("-+") if isinstance(sort, str) else ""
    if not field:
        raise QueryError(f"sort takes a field name, e.g. display_name or -created_time; got {sort!r}")
    order = "DESCENDING" if sort.startswith("-") else "ASCENDING"
    return {"property": [{"property": {"field": field}, "order": order}]}


def request_fields(method: Method, entity: str, where: str | Sequence[str] | None,
                   sort: str | None) -> dict[str, Any]:
    """The list request's filter and sorting fields for ``where`` and ``sort`` (``entity``: the listed
    message's name, whose fields type the values)."""
    request = {f.name for f in API.messages[method.request_message or ""]} if method.request_message else set()
    fields: dict[str, Any] = {}
    listed = conditions(where)
    if listed:
        if "filter" not in request:
            raise QueryError(f"{method.qualified_name} cannot filter")
        fields["filter"] = _filter(entity, listed)
    if sort is not None:
        sort_field = "sorting" if "sorting" in request else "sort" if "sort" in request else None
        if sort_field is None:
            raise QueryError(f"{method.qualified_name} cannot sort")
        fields[sort_field] = _sorting(sort)
    return fields


def filter_frame(frame: pd.DataFrame, condition: str) -> pd.DataFrame:
    """The rows of ``frame`` where ``condition`` holds, for columns no server filters on (text compared;
    ``~`` ignores case)."""
    match = _parsed(condition)
    column = frame[match["field"].strip()].astype("string").fillna("")
    value = match["value"]
    if match["op"] == "~":
        keep = column.str.contains(value, case=False, regex=False)
    elif match["op"] == "!=":
        keep = column != value
    else:
        keep = column == value
    return frame[keep.to_numpy(dtype=bool)].reset_index(drop=True)


def sort_frame(frame: pd.DataFrame, sort: str) -> pd.DataFrame:
    """``frame`` in the order the server gives, for frames gathered from several calls."""
    field = sort.lstrip("-+")
    if field not in frame.columns:
        return frame
    return frame.sort_values(field, ascending=not sort.startswith("-"), kind="stable", ignore_index=True)
