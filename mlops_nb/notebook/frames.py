"""List calls as pandas DataFrames.

Every list call of the API (``list_*`` and ``batch_get_*``) returns a
:class:`ListFrame`: one row per entity of the response's repeated message field
(``project``, ``deployment_status``, ``users``, ...), built straight from the wire
JSON one column at a time. The columns come from the entity message in the API
description, not from the data, so an empty page has the same columns and dtypes
as a full one.

Columns
-------
* Names are the entity's python (snake_case) field names. A nested message is
  flattened into its fields, joined with ``_`` at every level:
  ``metadata.values`` -> ``metadata_values``,
  ``user_info.owner_name`` -> ``user_info_owner_name``,
  ``single_deployment.deployment_composition.runtime_name`` ->
  ``single_deployment_deployment_composition_runtime_name``. A leading ``_``
  (``_property``) is dropped.
* dtypes: string -> ``string`` (``pd.StringDtype()``); int64 (JSON strings) ->
  ``Int64``; int32 -> ``Int32``; double -> ``float64``; bool -> ``boolean``;
  timestamp -> ``datetime64[us, UTC]``; enum -> ``category`` with the API's
  values as categories (in the API's order; a value a newer server sends is
  added after them rather than lost). Ids are plain strings.
* Repeated fields, maps, bytes and free-form ``object`` fields stay one column
  each, holding what ``Message.to_dict()`` gives for the field (lists and dicts
  with snake_case keys, ``bytes``).
* A map of ``StorageValue`` messages (an experiment's or a dataset's ``metadata.values``)
  also comes out as one typed column per key the response carries, named
  ``<map>.<key>`` the way MLflow names ``metrics.auc``: ``metadata.auc`` beside
  the raw ``metadata_values``, whose cells are :class:`StorageValues`: read-only
  mappings over the received JSON that decode a value when it is read (equal to
  the ``dict`` ``Message.to_dict()`` gives, at a fraction of its memory). The
  column's dtype follows the values' kind:
  ``double_value`` -> ``float64`` (with ``int64_value`` mixed in, too),
  ``int64_value`` -> ``Int64``, ``string_value``/``id_value``/``json_value`` ->
  ``string``, ``bool_value`` -> ``boolean``, ``timestamp_value`` ->
  ``datetime64[us, UTC]``, ``duration_value`` -> ``timedelta64[us]``; other or
  mixed kinds -> ``object``. A row without the key has a missing value. Servers
  send only the keys a request names (``response_metadata={"pattern": ["%"]}``
  asks for all), so these columns, unlike the others, depend on the data.
* Missing values follow proto3: a field absent from an entity (servers leave out
  defaults) has its default (``""``, ``0``, ``False``, the enum's first value,
  ``[]``, ``{}``; timestamps ``NaT``), exactly what the typed message reports. A
  column is missing (``<NA>``/``NaN``/``NaT``/``None``) only where the nested
  message holding it is absent, e.g. every ``single_deployment_*`` column of a
  shadow deployment.

Both generations of the API
---------------------------
The method's own description (``method.service.api``) drives everything: columns, dtypes,
enum categories, the typed view and paging. The workspaces generation's REST lists
(``client.deployer.deployment.list_deployments(parent="workspaces/W")``, ``list_workspaces``,
``list_runtimes``, ``list_jobs``, ``list_aggregates``, ...) give frames of ``V2Deployment``,
``V1Workspace``, ... the same way; their resources are named by ``name``
(``workspaces/W/deployments/D``) and their times are ``create_time``/``update_time``.
:func:`list_all` pages them by their ``page_size``/``page_token`` query parameters and
``nextPageToken``, storage's by its paging message; ``where``/``sort`` become a REST list's
``filter`` and ``order_by`` texts. A frame of the workspaces generation carries
``attrs[GENERATION_ATTR] == "workspaces"``.

Secrets
-------
A field named in :data:`mlops_nb.api.SECRET_FIELDS` (a deployment's passphrase or API key,
storage credentials) shows ``"<hidden>"`` (:data:`HIDDEN`) wherever the entity has a value,
in its flattened column and inside repeated and map columns (``securities``); the typed
view (``frame.entities``) still holds the value for a program that asks for it.

The typed view stays available on a fresh result: ``frame.project`` (the response's
entity field) gives that page's typed entities, ``frame.paging`` and the other
response fields read from the typed response, ``frame.response`` is the whole
typed response; all are built on first access. Frames derived with pandas
operations (``frame.head()``, ``frame[frame.x > 1]``) are ordinary DataFrames.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.api import SECRET_FIELDS, ApiDescription, Field, Method, description
from mlops_nb.notebook.progress import Progress
from mlops_nb.notebook.progress import progress as new_progress
from mlops_nb.notebook.query import request_fields
from mlops_nb.notebook.settings import settings
from mlops_nb.wire.messages import Message, message_class, parse_timestamp

__all__ = [
    "FRAME_ATTR",
    "GENERATION_ATTR",
    "HIDDEN",
    "LOG_ATTR",
    "ListFrame",
    "ListPage",
    "StorageValues",
    "entity_field",
    "frame_columns",
    "frame_from_wire",
    "list_all",
    "list_all_json",
    "list_result",
    "register_frame_renderer",
    "utc_times",
]

# The key a list frame leaves in ``DataFrame.attrs`` (the entity message's name).
# pandas carries ``attrs`` over to derived frames, which is how they keep the
# list display while being plain DataFrames.
FRAME_ATTR = "mlops_nb_entity"
# The key a log frame (``deployment_logs``) leaves in ``DataFrame.attrs``: it displays as a log.
LOG_ATTR = "mlops_nb_log"

# The API generation of a list frame's entities, where it is not the legacy one.
GENERATION_ATTR = "mlops_nb_generation"

TIMESTAMP_DTYPE = "datetime64[us, UTC]"


def entity_field(method: Method) -> Field:
    """The repeated message field of a list method's response that holds its entities."""
    api = method.service.api
    fields = api.messages.get(method.response_message or "", ())
    candidates = [f for f in fields if f.repeated and api.is_message(f.type)]
    if len(candidates) != 1:
        raise ValueError(f"{method.qualified_name}: its response has no single repeated entity field")
    return candidates[0]


# -- the column plan of an entity message ---------------------------------------------------


@dataclass(frozen=True)
class _Column:
    field: Field
    name: str


@dataclass(frozen=True)
class _Nested:
    field: Field
    parts: tuple[_Column | _Nested, ...]


def _is_flattened(api: ApiDescription, f: Field) -> bool:
    return api.is_message(f.type) and not f.repeated and not f.map


@cache
def _plan(api: ApiDescription, message: str, prefix: str = "") -> tuple[_Column | _Nested, ...]:
    parts: list[_Column | _Nested] = []
    for f in api.messages[message]:
        name = prefix + f.name.lstrip("_")
        parts.append(_Nested(f, _plan(api, f.type, name + "_")) if _is_flattened(api, f) else _Column(f, name))
    return tuple(parts)


def frame_columns(message: str, generation: str = "legacy") -> list[str]:
    """The column names a list frame of ``message`` entities (of that API generation) has, in
    order (without the data-dependent ``metadata.<key>`` columns)."""

    def names(parts: tuple[_Column | _Nested, ...]) -> Iterator[str]:
        for part in parts:
            yield from (names(part.parts) if isinstance(part, _Nested) else [part.name])

    return list(names(_plan(description(generation), message)))


# -- column conversions ------------------------------------------------------------------------
# Each takes the column's raw wire values as an object Series (None where absent)
# and returns a Series of the column's dtype, missing where absent.


def _strings(raw: pd.Series) -> pd.Series:
    return raw.astype(pd.StringDtype())


def _integers(dtype: str) -> Callable[[pd.Series], pd.Series]:
    def convert(raw: pd.Series) -> pd.Series:
        # to_numeric parses int64's JSON strings exactly (no trip through float).
        return pd.to_numeric(raw, dtype_backend="numpy_nullable").astype(dtype)

    return convert


def _doubles(raw: pd.Series) -> pd.Series:
    # astype(float) also reads proto3's "NaN", "Infinity" and "-Infinity".
    return raw.astype("float64")


def _bools(raw: pd.Series) -> pd.Series:
    return raw.astype("boolean")


def _timestamps(raw: pd.Series) -> pd.Series:
    try:
        return pd.to_datetime(raw, utc=True, format="ISO8601").astype(TIMESTAMP_DTYPE)
    except pd.errors.OutOfBoundsDatetime:
        # pandas 2 parses text to nanoseconds, which end in 2262 and start in 1677; proto's
        # timestamps run from year 1 (servers send 0001-01-01T00:00:00Z for "zero") to 9999.
        parsed = [None if v is None else parse_timestamp(v) for v in raw]
        return pd.Series(parsed, index=raw.index, dtype=TIMESTAMP_DTYPE)


def utc_times(values: Iterable[str | None]) -> pd.Series:
    """RFC 3339 texts of any fraction width (0 to 9 digits, ``Z`` or an offset, ``None`` for
    missing) as a UTC time series; pandas without a format would take the first value's width
    for all and refuse the others."""
    return _timestamps(pd.Series(list(values), dtype=object))


def _enum(raw: pd.Series, names: tuple[str, ...]) -> pd.Series:
    seen = pd.unique(raw.dropna())
    if any(isinstance(v, int) for v in seen):  # proto3 JSON may send an enum's number
        raw = raw.map(lambda v: names[v] if isinstance(v, int) and 0 <= v < len(names) else v)
        seen = pd.unique(raw.dropna())
    known = set(names)
    newer = [v for v in seen if v not in known]
    return pd.Series(pd.Categorical(raw, categories=[*names, *newer]), index=raw.index)


_SCALAR_CONVERSIONS: dict[str, Callable[[pd.Series], pd.Series]] = {
    "string": _strings,
    "int32": _integers("Int32"),
    "int64": _integers("Int64"),
    "double": _doubles,
    "bool": _bools,
    "timestamp": _timestamps,
}

_SCALAR_DEFAULTS: dict[str, Any] = {"string": "", "int32": 0, "int64": 0, "double": 0.0, "bool": False}


class StorageValues(Mapping[str, dict[str, Any]]):
    """A map of ``StorageValue`` messages as received (a ``metadata_values`` cell), read-only.

    ``values["auc"]`` decodes that entry when read: ``{"double_value": 0.91}``, as
    ``Message.to_dict()`` gives it; it compares equal to that ``dict`` of every entry
    (``dict(values)`` makes one). Holding the wire JSON rather than decoded dicts keeps a
    large frame's map column at about 50 bytes a row.
    """

    __slots__ = ("_generation", "_wire")

    def __init__(self, wire: Mapping[str, Any], generation: str = "legacy") -> None:
        self._wire = wire
        self._generation = generation

    def __getitem__(self, key: str) -> dict[str, Any]:
        return _storage_value(self._wire[key], self._generation)

    def __iter__(self) -> Iterator[str]:
        return iter(self._wire)

    def __len__(self) -> int:
        return len(self._wire)

    def __repr__(self) -> str:
        return repr(dict(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (StorageValues, (dict(self._wire), self._generation))

    # camelCase: the name pandas' to_json looks for on an object it does not know.
    def toDict(self) -> dict[str, dict[str, Any]]:  # noqa: N802
        """A plain ``dict`` of every entry, decoded (what ``DataFrame.to_json`` writes)."""
        return dict(self)


def _storage_value(wire: Any, generation: str) -> dict[str, Any]:
    return message_class("StorageValue", generation).from_wire(wire).to_dict()


@cache
def _secret_paths(api: ApiDescription, message: str, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Where secrets are in a message: python field name -> True (the field is a secret) or the same
    map for the message the field holds; empty when it holds none."""
    found: dict[str, Any] = {}
    for f in api.messages.get(message, ()):
        if (message, f.name) in SECRET_FIELDS:
            found[f.name] = True
        elif api.is_message(f.type) and f.type not in seen and (inner := _secret_paths(api, f.type, seen | {message})):
            found[f.name] = inner
    return found


def _hide_secrets(value: Any, paths: dict[str, Any]) -> Any:
    """A decoded value (dicts with python names, lists of them) with its secrets replaced by ``HIDDEN``."""
    if isinstance(value, list):
        return [_hide_secrets(v, paths) for v in value]
    if not isinstance(value, dict):
        return value
    out = dict(value)
    for name, inner in paths.items():
        if name in out and out[name] not in (None, "", b""):
            out[name] = HIDDEN if inner is True else _hide_secrets(out[name], inner)
    return out


def _python_objects(values: list[Any], present: np.ndarray | None, f: Field, owner: str,
                    api: ApiDescription) -> pd.Series:
    """Repeated, map, bytes and ``object`` columns: decoded value by value by the wire layer
    (maps of StorageValues as :class:`StorageValues` over the wire JSON), secrets hidden."""
    generation = api.generation
    cls = message_class(owner, generation)
    lazy = f.map and f.type == "StorageValue"
    secrets = _secret_paths(api, f.type)
    out: list[Any] = []
    for i, value in enumerate(values):
        if value is not None and lazy and isinstance(value, Mapping):
            out.append(StorageValues(value, generation))
        elif value is not None:
            decoded = cls.from_wire({f.json: value}).to_dict().get(f.name)
            if secrets and f.map and isinstance(decoded, dict):
                decoded = {k: _hide_secrets(v, secrets) for k, v in decoded.items()}
            elif secrets:
                decoded = _hide_secrets(decoded, secrets)
            out.append(decoded)
        elif present is None or present[i]:
            out.append(StorageValues({}, generation) if lazy else _object_default(f))
        else:
            out.append(None)
    return pd.Series(out, dtype=object)


def _object_default(f: Field) -> Any:
    if f.repeated:
        return []
    if f.map:
        return {}
    return b"" if f.type == "bytes" else None


# What a secret field's column shows where the entity has one (see ``SECRET_FIELDS``).
HIDDEN = "<hidden>"


def _column(api: ApiDescription, values: list[Any], present: np.ndarray | None, f: Field, owner: str) -> pd.Series:
    if (owner, f.name) in SECRET_FIELDS:
        # A passphrase, key or token: the frame says whether it is set, never what it is.
        values = [HIDDEN if v else v for v in values]
    if f.repeated or f.map or f.type in ("bytes", "object"):
        return _python_objects(values, present, f, owner, api)
    raw = pd.Series(values, dtype=object)
    absent = raw.isna().to_numpy()
    try:
        if api.is_enum(f.type):
            column, default = _enum(raw, api.enums[f.type]), api.enums[f.type][0]
        else:
            column, default = _SCALAR_CONVERSIONS[f.type](raw), _SCALAR_DEFAULTS.get(f.type)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"{owner}.{f.name} ({f.json}): cannot read the server's values as {f.type}: {e}") from None
    if default is not None:
        fill = absent if present is None else absent & present
        if fill.any():
            column = column.mask(fill, default)
    return column


def _fill_columns(api: ApiDescription, parts: tuple[_Column | _Nested, ...], owner: str, objects: list[Any],
                  present: np.ndarray | None, out: dict[str, pd.Series]) -> None:
    """Convert every column under ``owner``; ``present`` is None at the top (every row has an entity)."""
    for part in parts:
        key = part.field.json
        if present is None:
            values = [o.get(key) for o in objects]
        else:
            values = [o.get(key) if o is not None else None for o in objects]
        if isinstance(part, _Nested):
            nested_present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
            _fill_columns(api, part.parts, part.field.type, values, nested_present, out)
        else:
            out[part.name] = _column(api, values, present, part.field, owner)


def _entity_frame(api: ApiDescription, message: str, rows: list[dict[str, Any]]) -> dict[str, pd.Series]:
    columns: dict[str, pd.Series] = {}
    plan = _plan(api, message)
    _fill_columns(api, plan, message, rows, None, columns)
    maps = _value_maps(plan)
    if not maps:
        return columns
    with_keys: dict[str, pd.Series] = {}
    for name, column in columns.items():
        with_keys[name] = column
        if name in maps:
            with_keys.update(_value_columns(name, column))
    return with_keys


# -- maps of StorageValues as typed columns -----------------------------------------------------

# The kind of column each field of a StorageValue (a oneof) makes.
_VALUE_KINDS = {
    "double_value": "float64", "int64_value": "Int64", "string_value": "string", "id_value": "string",
    "json_value": "string", "bool_value": "boolean", "timestamp_value": TIMESTAMP_DTYPE,
    "duration_value": "timedelta64[us]",
}


def _value_maps(parts: tuple[_Column | _Nested, ...]) -> set[str]:
    """The names of the columns holding a map of StorageValues."""
    found: set[str] = set()
    for part in parts:
        if isinstance(part, _Nested):
            found |= _value_maps(part.parts)
        elif part.field.map and part.field.type == "StorageValue":
            found.add(part.name)
    return found


def _value_columns(name: str, maps: pd.Series) -> dict[str, pd.Series]:
    """``metadata.auc``, ... from the ``metadata_values`` column (dicts of decoded StorageValues)."""
    prefix = name.removesuffix("_values")
    cells: dict[str, dict[int, tuple[str, Any]]] = {}
    for row, values in enumerate(maps):
        for key, value in (values or {}).items():
            if value:  # an empty StorageValue holds nothing
                kind, item = next(iter(value.items()))
                cells.setdefault(key, {})[row] = (kind, item)
    columns = {}
    for key in sorted(cells):
        dtypes = {_VALUE_KINDS.get(kind, "object") for kind, _ in cells[key].values()}
        if dtypes == {"float64", "Int64"}:
            dtypes = {"float64"}
        dtype = dtypes.pop() if len(dtypes) == 1 else "object"
        values: list[Any] = [None] * len(maps)
        for row, (_, item) in cells[key].items():
            values[row] = item
        raw = pd.Series(values, index=maps.index, dtype=object)
        if dtype == "timedelta64[us]":
            column = pd.to_timedelta(raw).astype(dtype)
        elif dtype == "string":
            column = raw.astype(pd.StringDtype())
        else:
            column = raw.astype(dtype)
        columns[f"{prefix}.{key}"] = column
    return columns


# -- the frame ---------------------------------------------------------------------------------


@dataclass
class ListPage:
    """A list response as received: the method's qualified name, the wire JSON and the API
    generation the method belongs to (``"legacy"`` or ``"workspaces"``)."""

    rpc: str
    payload: dict[str, Any]
    generation: str = "legacy"
    _response: Message | None = field(default=None, repr=False)

    @property
    def method(self) -> Method:
        return description(self.generation).method(self.rpc)

    @property
    def response(self) -> Message:
        if self._response is None:
            self._response = message_class(self.method.response, self.generation).from_wire(self.payload)
        return self._response


class ListFrame(pd.DataFrame):
    """A DataFrame of a list call's entities that still answers the seed's idiom.

    ``frame.<entity field>`` (``.project``, ``.deployment_status``, ``.users``) gives the
    typed entities, ``frame.paging`` and the response's other fields read from the typed
    response, ``frame.response`` is the whole typed response; all built on first access
    from the JSON as received. pandas operations on the frame give ordinary DataFrames.
    """

    _metadata = ["_page"]
    _page: ListPage | None = None

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def _received(self) -> ListPage:
        if self._page is None:
            raise AttributeError("this frame carries no response (it was not returned by a list call)")
        return self._page

    @property
    def response(self) -> Message:
        """The typed response (for :func:`list_all`: every fetched entity, the last page's other fields)."""
        return self._received().response

    @property
    def entities(self) -> list[Message]:
        """The typed entities, whatever the response calls them (``.project``, ``.users``, ...)."""
        page = self._received()
        return getattr(page.response, entity_field(page.method).name)

    def _response_fields(self) -> tuple[str, ...]:
        if self._page is None:
            return ()
        method = self._page.method
        return tuple(f.name for f in method.service.api.messages[method.response])

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_") and name in self._response_fields():
            return getattr(self.response, name)
        return super().__getattr__(name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(self._response_fields()))

    def _repr_html_(self) -> str | None:
        return _FRAME_RENDERER[0](self) if _FRAME_RENDERER else None


# How list frames show as HTML: presentation is the display module's, which registers it (this
# module knows nothing of it, as messages know nothing of their cards).
_FRAME_RENDERER: list[Callable[[pd.DataFrame], str]] = []


def register_frame_renderer(render: Callable[[pd.DataFrame], str]) -> None:
    """Give list frames their ``_repr_html_`` (replacing the one registered before)."""
    _FRAME_RENDERER[:] = [render]


def frame_from_wire(method: Method, payload: Mapping[str, Any]) -> ListFrame:
    """The :class:`ListFrame` of a list method's response JSON (``payload`` is kept for the typed view)."""
    entity = entity_field(method)
    api = method.service.api
    rows = payload.get(entity.json) or []
    frame = ListFrame(_entity_frame(api, entity.type, rows))
    frame.attrs[FRAME_ATTR] = entity.type
    if api.generation != "legacy":
        frame.attrs[GENERATION_ATTR] = api.generation
    frame._page = ListPage(method.qualified_name, dict(payload), api.generation)
    return frame


# list_all reads raw pages through the ordinary bound methods; this flag tells the
# notebook client's result hook to hand back the JSON rather than a frame per page.
_RAW_PAGES: ContextVar[bool] = ContextVar("mlops_nb_raw_pages", default=False)


def list_result(method: Method, payload: dict[str, Any]) -> ListFrame | dict[str, Any]:
    """What a list call returns: a :class:`ListFrame`, or the JSON itself inside :func:`list_all`."""
    return payload if _RAW_PAGES.get() else frame_from_wire(method, payload)


@contextlib.contextmanager
def _raw_pages() -> Iterator[None]:
    token = _RAW_PAGES.set(True)
    try:
        yield
    finally:
        _RAW_PAGES.reset(token)


# -- every page ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Paging:
    """Where a method's page size and token go in its request, and where the next token comes back."""

    style: str  # "message" (request.paging), "fields" (request.page_size/page_token), "query" (GET), "none"
    request_type: str | None  # the paging message's type when style == "message"
    response_in_paging: bool  # next token under response.paging (else response.next_page_token)

    @classmethod
    def of(cls, method: Method) -> _Paging:
        messages = method.service.api.messages
        response = {f.name: f for f in messages[method.response]}
        in_paging = "paging" in response
        if method.request_message:
            request = {f.name: f for f in messages[method.request_message]}
            if "paging" in request:
                return cls("message", request["paging"].type, in_paging)
            if {"page_size", "page_token"} <= set(request):
                return cls("fields", None, in_paging)
        if {p.name for p in method.query_params} >= {"page_size", "page_token"}:
            return cls("query", None, in_paging)
        return cls("none", None, in_paging)

    def next_token(self, payload: Mapping[str, Any]) -> str:
        holder = (payload.get("paging") or {}) if self.response_in_paging else payload
        return holder.get("nextPageToken") or ""


def _expected_rows(method: Method, payload: Mapping[str, Any], limit: int | None) -> int | None:
    """How many rows the list will have, if known: ``limit``, or the entity count some
    responses carry (``user_project_count``, ``event_count``, ...), whichever is smaller."""
    total = None
    for f in method.service.api.messages[method.response]:
        if f.name.endswith("_count") and f.type in ("int32", "int64") and not f.repeated:
            with contextlib.suppress(TypeError, ValueError):
                total = int(payload.get(f.json) or 0)
            break
    if limit is None:
        return total
    return limit if total is None else min(total, limit)


def _list_method(bound: Any) -> tuple[Method, Callable[..., Any]]:
    service = getattr(getattr(bound, "__self__", None), "service", None)
    method = next((m for m in getattr(service, "methods", ()) if m.python == getattr(bound, "__name__", "")), None)
    if method is None or not method.is_list:
        raise TypeError("list_all takes a bound list method, such as client.storage.project.list_projects; "
                        f"got {bound!r}")
    return method, bound


def list_all(
    list_method: Callable[..., Any],
    request: Message | Mapping[str, Any] | None = None,
    *,
    where: str | Sequence[str] | None = None,
    sort: str | None = None,
    limit: int | None = None,
    page_size: int | None = None,
    progress: bool | None = None,
    **fields: Any,
) -> ListFrame:
    """Every page of a list call in one :class:`ListFrame`.

    ``list_method`` is a bound list method (``client.storage.project.list_projects``);
    ``request`` (a request message or dict) or keyword ``fields`` narrow it as they
    would for one call (``project_id=...``, ``filter=...``); any paging in them is
    replaced. ``where`` and ``sort`` are the filter and sort language of ``%mlops``
    (:mod:`mlops_nb.notebook.query`): ``where="display_name~churn"`` (or a list of
    conditions, all of which hold), ``sort="-created_time"``. ``limit`` stops after that many rows; ``page_size`` is asked of the
    server per call (default ``settings.page_size``). A progress bar shows once the
    list spans more than one page (a widget in a notebook, a line on stderr
    elsewhere); ``progress=False`` hides it, ``progress=True`` shows it from the
    first page. Ctrl-C (interrupting the kernel) stops cleanly: the rows fetched so
    far are returned, with a warning.

    The frame's typed view (``.project``, ``.response``) holds every fetched entity
    and the last page's other fields.
    """
    received = list_all_json(list_method, request, where=where, sort=sort, limit=limit, page_size=page_size,
                             progress=progress, **fields)
    return frame_from_wire(received.method, received.payload)


def list_all_json(
    list_method: Callable[..., Any],
    request: Message | Mapping[str, Any] | None = None,
    *,
    where: str | Sequence[str] | None = None,
    sort: str | None = None,
    limit: int | None = None,
    page_size: int | None = None,
    progress: bool | None = None,
    **fields: Any,
) -> ListPage:
    """Every page of a list call as one response's JSON: what :func:`list_all` makes its frame of.

    Takes the arguments of :func:`list_all`. For combining several lists into one frame, which
    costs much less than a frame per list (``mlops_nb.all_deployments``).
    """
    method, call = _list_method(list_method)
    if where or sort is not None:
        fields = {**fields, **request_fields(method, entity_field(method).type, where, sort)}
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    size = page_size or settings.page_size
    if size < 1:
        raise ValueError(f"page_size must be positive, got {size}")
    paging = _Paging.of(method)
    fetch = _page_fetcher(method, call, paging, request, fields)
    entity = entity_field(method)

    rows: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    pages = 0
    bar: Progress | None = None
    total: int | None = None
    token = ""
    done = False
    try:
        while limit is None or len(rows) < limit:
            wanted = size if limit is None else min(size, limit - len(rows))
            payload = fetch(token, wanted)
            pages += 1
            rows.extend(payload.get(entity.json) or [])
            last = payload
            previous, token = token, paging.next_token(payload)
            more = paging.style != "none" and bool(token) and (limit is None or len(rows) < limit)
            if bar is None and (progress or (progress is None and more)):
                total = _expected_rows(method, payload, limit)
                bar = new_progress("listing", method.qualified_name, total)
            if bar is not None:
                # Without a total, the bar runs ahead of the rows by one page's worth.
                bar.update(len(rows), _describe(len(rows), total, pages), total or len(rows) + len(rows) // pages)
            if not more:
                break
            if token == previous:
                raise RuntimeError(f"{method.qualified_name}: the server sent the same page token twice; "
                                   f"stopping after {len(rows):,} rows")
        done = True
    except KeyboardInterrupt:
        warnings.warn(f"list_all({method.qualified_name}) interrupted after {len(rows):,} rows "
                      f"({pages} pages); returning those", RuntimeWarning, stacklevel=3)
    finally:
        if bar is not None:
            bar.close(len(rows), _describe(len(rows), None, pages), done)
    if limit is not None:
        del rows[limit:]
    return ListPage(method.qualified_name, {**last, entity.json: rows}, method.service.api.generation)


def _page_fetcher(method: Method, call: Callable[..., Any], paging: _Paging,
                  request: Message | Mapping[str, Any] | None,
                  fields: dict[str, Any]) -> Callable[[str, int], dict[str, Any]]:
    """A function (page token, page size) -> the page's JSON, for any paging style."""
    if method.request_message:
        cls = message_class(method.request_message, method.service.api.generation)
        if request is None:
            base = cls(**fields)
        elif fields:
            raise TypeError(f"{method.qualified_name}: pass either a request or keyword fields, not both")
        else:
            base = copy.copy(request) if isinstance(request, Message) else cls(**dict(request))

        def page_request(token: str, size: int) -> Message:
            page = copy.copy(base)
            if paging.style == "message":
                # Built from wire JSON so the base64 token is decoded the way the wire layer decodes it.
                page.paging = message_class(paging.request_type or "", method.service.api.generation).from_wire(
                    {"pageSize": size, **({"pageToken": token} if token else {})})
            elif paging.style == "fields":
                page.page_size, page.page_token = size, token or None
            return page

        def fetch(token: str, size: int) -> dict[str, Any]:
            # body= is how every generation's methods take a whole request (RPC style and REST "*").
            return _call_for_payload(call, body=page_request(token, size))
    else:
        if request is not None:
            raise TypeError(f"{method.qualified_name} takes keyword arguments, not a request message")

        def fetch(token: str, size: int) -> dict[str, Any]:
            extra = {"page_size": size, "page_token": token or None} if paging.style == "query" else {}
            return _call_for_payload(call, **{**fields, **extra})

    return fetch


def _call_for_payload(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    with _raw_pages():
        result = call(*args, **kwargs)
    # The notebook client hands back the JSON; the wire client, a typed response.
    return result.to_wire() if isinstance(result, Message) else result


def _describe(rows: int, total: int | None, pages: int) -> str:
    of = f" / {total:,}" if total else ""
    return f"{rows:,}{of} rows, {pages} page{'s' if pages != 1 else ''}"
