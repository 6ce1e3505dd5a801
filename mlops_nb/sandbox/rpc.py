"""What every sandbox handler uses: the call context, gRPC errors, the handler registry, lists.

A handler is a plain function registered for one method of the API description::

    @handles("storage.user.get_user")
    def get_user(call: Call, request: Message) -> Message | dict | None: ...

It gets the request already decoded into its message class (types checked by the
wire layer) and returns a response message, a wire-JSON dict, or ``None`` for an
empty response. It raises :class:`RpcError` (``not_found(...)`` and friends) for
gRPC errors. Methods with no handler answer UNIMPLEMENTED.

Lists
-----
``list_page()`` serves every list call the same way:

* paging: ``page_size`` (default 100, at most 1000; larger values are capped) and
  an opaque ``page_token`` (keyset: the last row's sort key, so a deep page costs
  what the first one does).
* sorting: ``sorting.property[]`` (deployer: ``sort.property[]``), each a field
  of the listed entity by its python or wire name and an order; ties are broken by
  id. Default: newest first (``created_time`` descending).
* filter: ``filter.query.clause[]``. Constraints inside one clause are ANDed;
  clauses are ORed. A property constraint compares a field with one value
  (EQUAL_TO, NOT_EQUAL_TO, LESS_THAN, LESS_OR_EQUAL_TO, GREATER_THAN,
  GREATER_OR_EQUAL_TO, CONTAINS: case-insensitive substring); a tag constraint
  keeps (INCLUDE) or drops (EXCLUDE) entities carrying the tag.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from mlops_nb.api import API, Field, Method, description
from mlops_nb.wire.messages import message_class

if TYPE_CHECKING:
    from mlops_nb.sandbox.runtime import Supervisor
    from mlops_nb.sandbox.store import Store

__all__ = [
    "Call",
    "RpcError",
    "handles",
    "handles_stream",
    "HANDLERS",
    "STREAM_HANDLERS",
    "WORKSPACES_HANDLERS",
    "HANDLERS_BY_GENERATION",
    "UNIMPLEMENTED_REASONS",
    "not_implemented",
    "invalid_argument",
    "parse_json",
    "MAX_NESTING",
    "not_found",
    "already_exists",
    "permission_denied",
    "failed_precondition",
    "ListQuery",
    "list_page",
    "page_response",
    "run_batch",
    "MAX_BATCH",
    "count_matching",
    "new_id",
    "now",
    "timestamp_text",
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
]

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass
class Call:
    """One authenticated call: who makes it, to which method, against which store."""

    store: Store
    user: dict[str, Any]  # the caller's StorageUser, wire JSON (id, username, primaryEmail, ...)
    claims: dict[str, Any]  # the access token's claims
    method: Method
    base_url: str  # the gateway's root URL, e.g. http://127.0.0.1:8080
    supervisor: Supervisor | None = None  # runs the deployments' scorer processes

    @property
    def user_id(self) -> str:
        return self.user["id"]


class RpcError(Exception):
    """A gRPC error status to send back (code number and a message for the user)."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)


def invalid_argument(message: str) -> RpcError:
    return RpcError(3, message)


# protobuf's JSON parser refuses deeper nesting too.
MAX_NESTING = 100


def parse_json(raw: bytes, what: str) -> Any:
    """``raw`` as JSON; INVALID_ARGUMENT, naming ``what``, for bad JSON or nesting past ``MAX_NESTING``
    (hostile input must not reach the decoder's recursion limit, nor anything recursive after it)."""
    too_deep = invalid_argument(f"{what} is nested more than {MAX_NESTING} levels deep")
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise invalid_argument(f"{what} is not valid JSON ({e})") from None
    except RecursionError:
        raise too_deep from None
    if _nesting(value) > MAX_NESTING:
        raise too_deep
    return value


def _nesting(value: Any) -> int:
    """How deeply ``value`` nests lists and objects (iteratively: the body may be hostile)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def not_found(what: str, entity_id: str) -> RpcError:
    return RpcError(5, f"{what} {entity_id!r} not found (or you may not see it)")


def already_exists(message: str) -> RpcError:
    return RpcError(6, message)


def permission_denied(message: str) -> RpcError:
    return RpcError(7, message)


def failed_precondition(message: str) -> RpcError:
    return RpcError(9, message)


Handler = Callable[[Call, Any], Any]
HANDLERS: dict[str, Handler] = {}
STREAM_HANDLERS: dict[str, Callable[..., Any]] = {}
# The workspaces generation's handlers (MLOps 1.0 and later): they get the request as wire JSON, one
# dict of the path parameters, the query parameters (a repeated one as a list) and the body (under
# the method's ``body_field``, or merged in when that is "*"), all by their wire names, and return
# the response's wire JSON (or ``None`` for ``{}``).
WORKSPACES_HANDLERS: dict[str, Handler] = {}
HANDLERS_BY_GENERATION: dict[str, dict[str, Handler]] = {"legacy": HANDLERS, "workspaces": WORKSPACES_HANDLERS}


def _register(table: dict[str, Any], qualified_name: str, generation: str = "legacy") -> Callable[[Any], Any]:
    description(generation).method(qualified_name)  # fail at import on a misspelt name

    def decorator(fn: Any) -> Any:
        if qualified_name in table:
            raise RuntimeError(f"two sandbox handlers for {qualified_name}")
        table[qualified_name] = fn
        return fn

    return decorator


# Methods the sandbox does not implement, with what they would do (their 501 answer says it). They
# have no handler, so ``server.implemented`` and the README's list count them as unimplemented.
UNIMPLEMENTED_REASONS: dict[str, dict[str, str]] = {"legacy": {}, "workspaces": {}}


def not_implemented(qualified_name: str, what: str, *, generation: str = "legacy") -> None:
    """Say what a method the sandbox leaves unimplemented would do (``what``, a noun phrase such as
    "deployment scaling schedules"), for its UNIMPLEMENTED answer."""
    description(generation).method(qualified_name)  # fail at import on a misspelt name
    if qualified_name in HANDLERS_BY_GENERATION[generation]:
        raise RuntimeError(f"{qualified_name} has a handler; it cannot be unimplemented too")
    UNIMPLEMENTED_REASONS[generation][qualified_name] = what


def handles(qualified_name: str, *, generation: str = "legacy") -> Callable[[Handler], Handler]:
    """Register a handler for ``server.entity.method`` of one generation of the API."""
    return _register(HANDLERS_BY_GENERATION[generation], qualified_name, generation)


def handles_stream(qualified_name: str) -> Callable[[Any], Any]:
    """Register an async handler ``(call, starlette_request) -> starlette Response`` for a streaming method."""
    return _register(STREAM_HANDLERS, qualified_name)


def new_id() -> str:
    return str(uuid.uuid4())


def timestamp_text(value: datetime) -> str:
    """Fixed-width RFC 3339 (microseconds, ``Z``): stored timestamps sort as text."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_clock_lock = threading.Lock()
_last_now: datetime | None = None


def now() -> str:
    """The current time, strictly increasing within the process.

    Lists default to newest first; entities created within one clock tick (a loop of
    creates, or several rows of one transaction) must still have a defined order.
    """
    global _last_now
    with _clock_lock:
        current = datetime.now(timezone.utc)
        if _last_now is not None and current <= _last_now:
            current = _last_now + timedelta(microseconds=1)
        _last_now = current
    return timestamp_text(current)


# -- lists -----------------------------------------------------------------------------------


@dataclass
class ListQuery:
    """What to list: entities of ``kind`` (rows of table ``entity`` aliased ``e``), shaped as ``message``.

    ``where``/``params`` narrow the rows (e.g. ``"e.project_id = ?"``) before the
    user's filter applies. ``fields`` adds sortable/filterable names that are not
    fields of the message, as SQL expressions over ``e``. ``table`` names another
    table with the entity table's columns ``kind``, ``id``, ``created_time`` and
    ``data`` (e.g. an append-only log kept apart from the entities).
    """

    kind: str
    message: str
    where: str = "1"
    params: Sequence[Any] = ()
    fields: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (sql, type)
    table: str = "entity"


_OPERATORS = {
    "EQUAL_TO": "=", "NOT_EQUAL_TO": "!=", "LESS_THAN": "<", "LESS_OR_EQUAL_TO": "<=",
    "GREATER_THAN": ">", "GREATER_OR_EQUAL_TO": ">=",
}


# Names the workspaces API's client (h2o-mlops 1.6.5) sorts and filters storage lists by: MLOps
# storage's own column names, where they differ from the message's field names.
_STORAGE_COLUMNS = {"version_number": ("version",), "last_modified_time": ("updated_time",),
                    "name": ("display_name",)}


def _field_expr(query: ListQuery, name: str) -> tuple[str, str]:
    """(SQL expression, type) for a sortable/filterable field name."""
    if name in query.fields:
        return query.fields[name]
    if name in ("created_time", "createdTime"):
        return "e.created_time", "timestamp"
    if name == "id":
        return "e.id", "string"
    if name == "project_id" and not any(f.name == "project_id" for f in API.messages[query.message]):
        return "e.project_id", "string"  # every entity's home project, as MLOps storage filters by it
    fields: Sequence[Field] = API.messages[query.message]
    for wanted in (name, *_STORAGE_COLUMNS.get(name, ())):
        for f in fields:
            if wanted in (f.name, f.json) and not f.repeated and not f.map and (
                f.type in ("string", "int32", "int64", "double", "bool", "timestamp") or API.is_enum(f.type)
            ):
                expr = f"json_extract(e.data, '$.{f.json}')"
                if f.type == "int64":
                    expr = f"CAST({expr} AS INTEGER)"
                return expr, f.type
    valid = sorted(
        {f.name for f in fields if not f.repeated and not f.map
         and (f.type in ("string", "int32", "int64", "double", "bool", "timestamp") or API.is_enum(f.type))}
        | set(query.fields) | {"created_time", "id"}
    )
    raise invalid_argument(f"cannot filter or sort {query.message} by {name!r}; use one of: {', '.join(valid)}")


def _constraint_value(value: Any, type_name: str) -> Any:
    if value is None:
        raise invalid_argument("a property constraint needs a value")
    for attr in ("string_value", "id_value", "json_value", "duration_value"):
        if value.is_set(attr):
            return getattr(value, attr)
    if value.is_set("int64_value"):
        return value.int64_value
    if value.is_set("double_value"):
        return value.double_value
    if value.is_set("bool_value"):
        return 1 if value.bool_value else 0
    if value.is_set("timestamp_value"):
        return timestamp_text(value.timestamp_value)
    # An unset value is the type's zero value, as in proto3.
    return {"bool": 0, "int32": 0, "int64": 0, "double": 0.0}.get(type_name, "")


def _filter_sql(query: ListQuery, filter_: Any) -> tuple[str, list[Any]]:
    clauses = list(filter_.query.clause) if filter_ is not None and filter_.query is not None else []
    if not clauses:
        return "1", []
    ors, params = [], []
    for clause in clauses:
        ands = []
        for c in clause.property_constraint:
            prop = c._property
            if prop is None or not prop.field:
                raise invalid_argument("a property constraint needs property.field (e.g. 'display_name')")
            expr, type_name = _field_expr(query, prop.field)
            op = str(c.operator)
            value = _constraint_value(c.value, type_name) if op != "IN_LIST" else None
            if op in ("CONTAINS", "ICONTAINS"):
                ands.append(f"instr(lower(CAST({expr} AS TEXT)), lower(?)) > 0")
                params.append(str(value))
            elif op == "IN_LIST":  # the workspaces API's storage: one of ``values``
                listed = [_constraint_value(message_class("StorageValue").from_wire(v), type_name)
                          for v in c.unknown_fields.get("values", [])]
                ands.append(f"{_or_zero(expr, type_name)} IN ({', '.join('?' * len(listed))})" if listed else "0")
                params += listed
            elif op in _OPERATORS:
                ands.append(f"{_or_zero(expr, type_name)} {_OPERATORS[op]} ?")
                params.append(value)
            else:
                raise invalid_argument(
                    f"operator {op!r} on {prop.field!r}: use one of {', '.join([*_OPERATORS, 'CONTAINS', 'IN_LIST'])}"
                )
        for t in clause.tag_constraint:
            if not t.tag_id:
                raise invalid_argument("a tag constraint needs tag_id")
            exists = "EXISTS (SELECT 1 FROM entity_tag t WHERE t.entity_id = e.id AND t.tag_id = ?)"
            ands.append(f"NOT {exists}" if str(t.inclusion) == "EXCLUDE" else exists)
            params.append(t.tag_id)
        ors.append("(" + (" AND ".join(ands) or "1") + ")")
    return "(" + " OR ".join(ors) + ")", params


def _zero(type_name: str) -> Any:
    return {"bool": 0, "int32": 0, "int64": 0, "double": 0.0}.get(type_name, "")


# Columns of the entity table that are never NULL: compared as they are, so their indexes serve.
_NOT_NULL = ("e.id", "e.created_time")


def _or_zero(expr: str, type_name: str) -> str:
    """The field, or its zero value where absent (as proto3 reads it), spelt as the store's indexes are."""
    if expr in _NOT_NULL:
        return expr
    return f"COALESCE({expr}, {_sql_literal(_zero(type_name))})"


def _sort_keys(query: ListQuery, sorting: Any) -> list[tuple[str, bool]]:
    """[(SQL expression, descending)], ending with the id as tie-breaker."""
    props = list(sorting._property) if sorting is not None else []
    keys = []
    for p in props:
        if p._property is None or not p._property.field:
            raise invalid_argument("a sort property needs property.field (e.g. 'display_name')")
        expr, type_name = _field_expr(query, p._property.field)
        keys.append((_or_zero(expr, type_name), str(p.order) == "DESCENDING"))
    if not keys:
        keys = [("e.created_time", True)]
    keys.append(("e.id", keys[-1][1]))
    return keys


def _sql_literal(value: Any) -> str:
    return "''" if value == "" else repr(value)


def _keyset_sql(keys: list[tuple[str, bool]], last: list[Any]) -> tuple[str, list[Any]]:
    """The rows after ``last`` in the order of ``keys``."""
    if len({desc for _, desc in keys}) == 1:
        # One direction (always so with one sort field): a row value, which SQLite reads as a range
        # of the index it walks, so that a deep page starts where the last one ended. An index on an
        # expression (the display name) takes a range only from a comparison of its first key.
        columns = ", ".join(expr for expr, _ in keys)
        marks = ", ".join("?" for _ in keys)
        op = "<" if keys[0][1] else ">"
        return f"({keys[0][0]} {op}= ? AND ({columns}) {op} ({marks}))", [last[0], *last]
    ors, params = [], []
    for i, (expr, desc) in enumerate(keys):
        parts = [f"{keys[j][0]} = ?" for j in range(i)]
        params += last[:i]
        parts.append(f"{expr} {'<' if desc else '>'} ?")
        params.append(last[i])
        ors.append("(" + " AND ".join(parts) + ")")
    return "(" + " OR ".join(ors) + ")", params


def _page_size(paging: Any) -> int:
    size = paging.page_size if paging is not None else 0
    if size < 0:
        raise invalid_argument(f"paging.page_size must not be negative (got {size})")
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _part(request: Any, name: str) -> Any:
    return getattr(request, name) if request is not None and name in type(request)._specs else None


def list_page(call: Call, query: ListQuery, request: Any, *, paging: Any = None) -> tuple[list[dict[str, Any]], bytes]:
    """One page of entities (wire JSON) and the next page token (``b""`` on the last page).

    ``request`` is the list request: its ``paging``, ``filter`` and ``sorting`` (``sort`` in some
    deployer requests) apply where it has them; ``paging`` overrides the request's.
    """
    paging = paging if paging is not None else _part(request, "paging")
    filter = _part(request, "filter")
    sorting = _part(request, "sorting") or _part(request, "sort")
    where_filter, filter_params = _filter_sql(query, filter)
    keys = _sort_keys(query, sorting)
    signature = json.dumps([query.kind, where_filter, filter_params, [k for k, _ in keys],
                            [d for _, d in keys]], default=str)
    conditions = ["e.kind = ?", f"({query.where})", where_filter]
    params: list[Any] = [query.kind, *query.params, *filter_params]
    token = paging.page_token if paging is not None else b""
    if token:
        try:
            state = json.loads(bytes(token).decode())
            last, token_signature = state["after"], state["query"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise invalid_argument("paging.page_token is not a token this server issued") from None
        if token_signature != _digest(signature) or len(last) != len(keys):
            raise invalid_argument("paging.page_token belongs to a list with other filters or sorting; "
                                   "start again without a page token")
        keyset, keyset_params = _keyset_sql(keys, last)
        conditions.append(keyset)
        params += keyset_params
    size = _page_size(paging)
    order = ", ".join(f"{expr} {'DESC' if desc else 'ASC'}" for expr, desc in keys)
    select_keys = ", ".join(f"{expr} AS k{i}" for i, (expr, _) in enumerate(keys))
    sql = (f"SELECT e.data, {select_keys} FROM {query.table} e WHERE {' AND '.join(conditions)} "
           f"ORDER BY {order} LIMIT ?")
    with call.store.reading() as db:
        rows = db.execute(sql, [*params, size + 1]).fetchall()
    items = [json.loads(r["data"]) for r in rows[:size]]
    next_token = b""
    if len(rows) > size:
        last_row = rows[size - 1]
        state = {"after": [last_row[f"k{i}"] for i in range(len(keys))], "query": _digest(signature)}
        next_token = json.dumps(state, separators=(",", ":")).encode()
    return items, next_token


def count_matching(call: Call, query: ListQuery, *, filter: Any = None) -> int:
    where_filter, filter_params = _filter_sql(query, filter)
    sql = f"SELECT count(*) FROM {query.table} e WHERE e.kind = ? AND ({query.where}) AND {where_filter}"
    with call.store.reading() as db:
        return int(db.execute(sql, [query.kind, *query.params, *filter_params]).fetchone()[0])


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


MAX_BATCH = 1000


def run_batch(items: Sequence[Any], what: str, act: Callable[[Any], object],
              describe: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per item of a batch call (``describe(item)`` plus ``status`` and ``message``).

    One item's error is reported in its result and does not stop the others.
    """
    if len(items) > MAX_BATCH:
        raise invalid_argument(f"at most {MAX_BATCH} {what} per batch, got {len(items)}")
    results = []
    for item in items:
        try:
            act(item)
            status, message = True, ""
        except RpcError as e:
            status, message = False, e.message
        results.append({**describe(item), "status": status, "message": message})
    return results


def page_response(entity_field: str, items: list[dict[str, Any]], next_token: bytes,
                  **extra: Any) -> dict[str, Any]:
    """A list response in wire JSON: the entities under their field name, and ``paging``.

    ``paging`` is left out on the last page, as the real gateway does: the legacy
    client loops ``while response.paging:``, so an empty ``paging`` would never end.
    """
    body: dict[str, Any] = {entity_field: items, **extra}
    if next_token:
        body["paging"] = {"nextPageToken": base64.b64encode(next_token).decode()}
    return body
