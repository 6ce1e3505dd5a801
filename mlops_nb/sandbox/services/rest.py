"""REST list calls of the workspaces API (``pageSize``, ``pageToken``, ``filter``, ``orderBy``), served
by the same keyset-paged SQL as storage's lists (:func:`mlops_nb.sandbox.rpc.list_page`).

``filter`` is the AIP-160 subset ``h2o-mlops`` 1.6.5 writes: comparisons ``field OP value`` (``=``,
``!=``, ``<``, ``<=``, ``>``, ``>=``, ``:`` for contains) joined by ``AND`` and ``OR``, with
parentheses; values ``'text'`` or ``"text"``, numbers, ``true``/``false``, ``timestamp('...')``
and bare words (enum values). It becomes storage's filter (clauses ORed, constraints ANDed).
``orderBy`` is ``field [desc], field [desc]``. Fields are the resource's REST names
(``display_name``, ``create_time``), mapped by the caller to the stored entity's fields. The
page token is the storage token, base64 (it is opaque to clients either way).
"""

from __future__ import annotations

import base64
import re
from typing import Any

from mlops_nb.sandbox.rpc import Call, ListQuery, count_matching, invalid_argument, list_page
from mlops_nb.sandbox.services.access import require_project
from mlops_nb.wire.messages import message_class

__all__ = ["memory_count", "memory_list", "rest_count", "rest_list", "resource_id", "storage_filter"]

_TOKEN = re.compile(r"""\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<op><=|>=|!=|=|<|>|:)|(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
                        |(?P<ts>timestamp\(\s*(?:'[^']*'|"[^"]*")\s*\))|(?P<word>[A-Za-z0-9_.\-+]+))""", re.VERBOSE)
_OPS = {"=": "EQUAL_TO", "!=": "NOT_EQUAL_TO", "<": "LESS_THAN", "<=": "LESS_OR_EQUAL_TO", ">": "GREATER_THAN",
        ">=": "GREATER_OR_EQUAL_TO", ":": "CONTAINS"}


def resource_id(name: Any, collection: str, what: str) -> str:
    """The id in ``<collection>/<id>`` (e.g. ``workspaces/W``); INVALID_ARGUMENT naming the expected form."""
    if not isinstance(name, str) or not name.startswith(collection + "/") or name.count("/") != 1 \
            or not name.split("/", 1)[1]:
        raise invalid_argument(f"{what} must look like '{collection}/<id>', got {name!r}")
    return name.split("/", 1)[1]


def workspace_parent(call: Call, parent: Any, *, write: bool = False) -> str:
    """The project id of a ``parent`` of the shape ``workspaces/<workspace id>`` that the caller may
    read (or, with ``write``, change); INVALID_ARGUMENT for another shape."""
    parts = str(parent or "").split("/")
    if len(parts) != 2 or parts[0] != "workspaces" or not parts[1]:
        raise invalid_argument(f"parent must look like 'workspaces/<workspace id>', got {parent!r}")
    require_project(call, parts[1], write=write)
    return parts[1]


def _tokens(text: str) -> list[tuple[str, str]]:
    out, position = [], 0
    text = text.strip()
    while position < len(text):
        found = _TOKEN.match(text, position)
        if found is None or found.end() == position:
            raise invalid_argument(f"filter {text!r}: cannot read it from {text[position:position + 20]!r}; "
                                   "write comparisons such as display_name = 'x', joined by AND / OR")
        kind = found.lastgroup or ""
        out.append((kind, found.group(kind).strip()))
        position = found.end()
    return out


def _value(kind: str, text: str) -> dict[str, Any]:
    if kind == "str":
        return {"stringValue": re.sub(r"\\(.)", r"\1", text[1:-1])}
    if kind == "ts":
        return {"timestampValue": text[text.index("(") + 1:-1].strip()[1:-1]}
    if text in ("true", "false"):
        return {"boolValue": text == "true"}
    if re.fullmatch(r"[+-]?\d+", text):
        return {"int64Value": text}
    if re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?", text):
        return {"doubleValue": float(text)}
    return {"stringValue": text}  # an enum value, written bare


class _Parser:
    """Recursive descent over AND / OR / parentheses, giving disjunctive normal form (a list of ANDs)."""

    def __init__(self, text: str, names: dict[str, str]) -> None:
        self.text, self.names = text, names
        self.tokens = _tokens(text)
        self.at = 0

    def parse(self) -> list[list[dict[str, Any]]]:
        clauses = self._or()
        if self.at != len(self.tokens):
            raise invalid_argument(f"filter {self.text!r}: unexpected {self.tokens[self.at][1]!r}")
        return clauses

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _or(self) -> list[list[dict[str, Any]]]:
        clauses = self._and()
        while (token := self._peek()) is not None and token == ("word", "OR"):
            self.at += 1
            clauses += self._and()
        return clauses

    def _and(self) -> list[list[dict[str, Any]]]:
        clauses = self._term()
        while (token := self._peek()) is not None and token == ("word", "AND"):
            self.at += 1
            right = self._term()
            clauses = [a + b for a in clauses for b in right]
        return clauses

    def _term(self) -> list[list[dict[str, Any]]]:
        token = self._peek()
        if token is None:
            raise invalid_argument(f"filter {self.text!r} ends where a comparison should be")
        if token[0] == "lp":
            self.at += 1
            clauses = self._or()
            if self._peek() != ("rp", ")"):
                raise invalid_argument(f"filter {self.text!r}: a '(' is not closed")
            self.at += 1
            return clauses
        if token == ("word", "NOT") or token[1] == "-":
            raise invalid_argument(f"filter {self.text!r}: the sandbox does not take NOT; write the comparison "
                                   "the other way (e.g. != for =)")
        if self.at + 3 > len(self.tokens):
            raise invalid_argument(f"filter {self.text!r}: {token[1]!r} needs an operator and a value")
        field_token, op, value = self.tokens[self.at:self.at + 3]
        if field_token[0] != "word" or op[0] != "op" or value[0] not in ("str", "ts", "word"):
            raise invalid_argument(f"filter {self.text!r}: expected FIELD OP VALUE at {field_token[1]!r}")
        self.at += 3
        return [[{"property": {"field": self._field(field_token[1])}, "operator": _OPS[op[1]],
                  "value": _value(*value)}]]

    def _field(self, name: str) -> str:
        if name not in self.names:
            raise invalid_argument(f"cannot filter or sort by {name!r}; use one of: {', '.join(sorted(self.names))}")
        return self.names[name]


def _storage_request(request: dict[str, Any], names: dict[str, str]) -> Any:
    """The REST list request as storage's list request message (paging, filter, sorting)."""
    wire: dict[str, Any] = {}
    text = request.get("filter") or ""
    if text.strip():
        wire["filter"] = {"query": {"clause": [{"propertyConstraint": ands} for ands in _Parser(text, names).parse()]}}
    order = request.get("orderBy") or ""
    sorts = []
    for part in filter(None, (p.strip() for p in order.split(","))):
        words = part.split()
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise invalid_argument(f"orderBy {order!r}: write 'field' or 'field desc', separated by commas")
        field = _Parser(words[0] + " = 0", names)._field(words[0])
        descending = len(words) == 2 and words[1].lower() == "desc"
        sorts.append({"property": {"field": field}, "order": "DESCENDING" if descending else "ASCENDING"})
    if sorts:
        wire["sorting"] = {"property": sorts}
    try:
        wire["paging"] = {"pageSize": int(request.get("pageSize") or 0), "pageToken": request.get("pageToken") or ""}
        return message_class("StorageListProjectsRequest").from_wire(wire)
    except ValueError:
        raise invalid_argument("pageToken is not a token this server issued") from None


def rest_list(call: Call, query: ListQuery, request: dict[str, Any], names: dict[str, str]) -> tuple[list[dict[str, Any]], str]:
    """One page of ``query`` for a REST list request, and the next page token (``""`` on the last page).

    ``names``: the REST field names a filter or orderBy may use -> the stored entity's field names.
    """
    items, token = list_page(call, query, _storage_request(request, names))
    return items, base64.b64encode(token).decode("ascii") if token else ""


def rest_count(call: Call, query: ListQuery, request: dict[str, Any], names: dict[str, str]) -> int:
    """How many entities of ``query`` match a REST request's ``filter``."""
    return count_matching(call, query, filter=_storage_request(request, names).filter)


def _matches(item: dict[str, Any], clauses: list[list[dict[str, Any]]]) -> bool:
    def compare(c: dict[str, Any]) -> bool:
        have = item.get(c["property"]["field"])
        want = next(iter(c["value"].values()))
        if c["operator"] == "CONTAINS":
            return str(want).lower() in str(have or "").lower()
        if isinstance(want, str) and want.lstrip("+-").isdigit() and isinstance(have, int | float):
            want = int(want)
        if have is None:
            have = type(want)()
        try:
            return {"EQUAL_TO": have == want, "NOT_EQUAL_TO": have != want, "LESS_THAN": have < want,
                    "LESS_OR_EQUAL_TO": have <= want, "GREATER_THAN": have > want,
                    "GREATER_OR_EQUAL_TO": have >= want}[c["operator"]]
        except TypeError:
            raise invalid_argument(f"cannot compare {c['property']['field']} ({have!r}) with {want!r}") from None

    return not clauses or any(all(compare(c) for c in ands) for ands in clauses)


def public_fields(item: dict[str, Any]) -> dict[str, Any]:
    """An in-memory list's item without the keys only the sandbox reads (those starting with ``_``)."""
    return {k: v for k, v in item.items() if not k.startswith("_")}


def memory_list(items: list[dict[str, Any]], request: dict[str, Any], names: dict[str, str],
                ) -> tuple[list[dict[str, Any]], str]:
    """A REST list over a small fixed list of wire-JSON dicts (filter, orderBy, pageSize, pageToken
    as :func:`rest_list` takes them); ``names`` maps REST field names to the dicts' keys."""
    storage = _storage_request(request, names)
    wire = storage.to_wire()
    clauses = [c.get("propertyConstraint", []) for c in wire.get("filter", {}).get("query", {}).get("clause", [])]
    for ands in clauses:
        for c in ands:
            c["value"] = c.get("value") or {"stringValue": ""}  # proto3 leaves a zero value out
    chosen = [i for i in items if _matches(i, clauses)]
    for sort in reversed(wire.get("sorting", {}).get("property", [])):
        key = sort["property"]["field"]
        chosen.sort(key=lambda i, k=key: (i.get(k) is None, i.get(k) or ""), reverse=sort["order"] == "DESCENDING")
    size = storage.paging.page_size or 100
    start = int.from_bytes(storage.paging.page_token or b"\0", "big")
    page = chosen[start:start + size]
    more = start + size < len(chosen)
    return page, base64.b64encode((start + size).to_bytes(4, "big")).decode("ascii") if more else ""


def memory_count(items: list[dict[str, Any]], request: dict[str, Any], names: dict[str, str]) -> int:
    """How many of ``items`` match a REST request's ``filter`` (see :func:`memory_list`)."""
    return len(memory_list(items, {"filter": request.get("filter"), "pageSize": 2**31 - 1}, names)[0])


def storage_filter(request: dict[str, Any]) -> Any:
    """A workspaces storage request's ``filter`` (wire JSON) as storage's filter message, for
    :func:`mlops_nb.sandbox.rpc.count_matching`."""
    try:
        return message_class("StorageFilterRequest").from_wire(request.get("filter") or {})
    except ValueError as e:
        raise invalid_argument(f"invalid filter: {e}") from None
