"""The filter and sort language of list calls, shared by the Python API and ``%mlops``.

``list_all(client.storage.project.list_projects, where="display_name~churn", sort="-created_time")``
gives what ``%mlops projects --filter display_name~churn --sort -created_time`` gives. A condition
is ``FIELD=VALUE``, ``FIELD!=VALUE`` or ``FIELD~TEXT`` (contains); ``where`` takes one or a list,
all of which must hold. ``sort`` is ``FIELD`` (ascending) or ``-FIELD`` (descending). Values are
typed as the entity's field is (numbers, true/false, RFC 3339 times); a condition that does not
fit raises :class:`QueryError` (a ``ValueError``) saying why, before any call.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlops_nb.api import ApiDescription, Field, Method
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


def _fields(api: ApiDescription, entity: str) -> dict[str, Field]:
    return {name: f for f in api.messages[entity] for name in (f.name, f.json)}


def _filter(api: ApiDescription, entity: str, where: Sequence[str]) -> dict[str, Any]:
    """A filter of one clause (its constraints all hold) in wire spelling, which storage and deployer share."""
    fields = _fields(api, entity)
    constraints = []
    for condition in where:
        match = _parsed(condition)
        known = fields.get(match["field"].strip())
        constraints.append({"property": {"field": known.name if known else match["field"].strip()},
                            "operator": _OPERATORS[match["op"]],
                            "value": _value(known, match["value"], match["op"])})
    return {"query": {"clause": [{"propertyConstraint": constraints}]}}


def _text_filter(api: ApiDescription, entity: str, where: Sequence[str]) -> str:
    """The same conditions as a REST list's ``filter`` text (AIP-160: ``display_name = "x" AND
    state != FAILED``, ``:`` for contains), which the workspaces generation's REST lists take."""
    fields = _fields(api, entity)
    parts = []
    for condition in where:
        match = _parsed(condition)
        name = match["field"].strip()
        known = fields.get(name)
        typed = _value(known, match["value"], match["op"])
        kind, value = next(iter(typed.items()))
        if kind == "stringValue" and known is not None and api.is_enum(known.type) and match["op"] != "~":
            text = value  # enum values are bare words
        elif kind == "stringValue":
            text = json.dumps(value)
        elif kind == "timestampValue":
            text = f"timestamp({json.dumps(value)})"
        elif kind == "boolValue":
            text = "true" if value else "false"
        else:
            text = str(value)
        operator = {"=": "=", "!=": "!=", "~": ":"}[match["op"]]
        parts.append(f"{known.name if known else name} {operator} {text}")
    return " AND ".join(parts)


def _sort_field(sort: str) -> str:
    field = sort.lstrip("-+") if isinstance(sort, str) else ""
    if not field:
        raise QueryError(f"sort takes a field name, e.g. display_name or -created_time; got {sort!r}")
    return field


def _sorting(sort: str) -> dict[str, Any]:
    order = "DESCENDING" if sort.startswith("-") else "ASCENDING"
    return {"property": [{"property": {"field": _sort_field(sort)}, "order": order}]}


def request_fields(method: Method, entity: str, where: str | Sequence[str] | None,
                   sort: str | None) -> dict[str, Any]:
    """The list request's filter and sorting fields for ``where`` and ``sort`` (``entity``: the listed
    message's name, whose fields type the values): storage's filter and sorting messages, or, for the
    workspaces generation's REST lists, the ``filter`` and ``order_by`` query parameters' texts."""
    api = method.service.api
    request = {f.name for f in api.messages[method.request_message or ""]} if method.request_message else set()
    query = {p.name for p in method.query_params}
    fields: dict[str, Any] = {}
    listed = conditions(where)
    if listed:
        if "filter" in request:
            fields["filter"] = _filter(api, entity, listed)
        elif "filter" in query:
            fields["filter"] = _text_filter(api, entity, listed)
        else:
            raise QueryError(f"{method.qualified_name} cannot filter")
    if sort is not None:
        sort_field = "sorting" if "sorting" in request else "sort" if "sort" in request else None
        if sort_field is not None:
            fields[sort_field] = _sorting(sort)
        elif "order_by" in query:
            fields["order_by"] = _sort_field(sort) + (" desc" if sort.startswith("-") else "")
        else:
            raise QueryError(f"{method.qualified_name} cannot sort")
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
