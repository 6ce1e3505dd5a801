"""Message and enum classes, built once from each generation's API description.

Every message of the API is a subclass of :class:`Message` and every enum a
``str`` :class:`enum.Enum`, created here with ``type()`` and bound as module
attributes, so they pickle by reference and show their fields in ``help()``,
Shift-Tab and tab completion. The legacy generation's classes are built at import,
as attributes of this module; the workspaces generation's by :func:`build_classes`
when :mod:`mlops_nb.wire.workspaces` is first imported (``message_class(name,
"workspaces")`` does that), as attributes of that module. A name both generations
have is two classes.

Python values and their wire (proto3 JSON) form:

=============  ==========================  =============================
type           python                      wire
=============  ==========================  =============================
string         ``str``                     string
int32          ``int``                     number
int64          ``int``                     decimal string
double         ``float``                   number
bool           ``bool``                    true / false
bytes          ``bytes``                   standard base64 string
timestamp      aware ``datetime`` (UTC)    RFC 3339 string with ``Z``
object         any JSON value              as is
enum           the enum's member           its name
message        the message class           object, lowerCamelCase keys
=============  ==========================  =============================

Unset fields read as their default (``""``, ``0``, ``False``, ``b""``, ``[]``,
``{}``, the enum's first value; ``None`` for messages and timestamps) and are
not sent. Fields that a newer server sends and the description does not know
are kept (``message.unknown_fields``) and sent back unchanged.
"""

from __future__ import annotations

import base64
import binascii
import enum
import inspect
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar

from mlops_nb.api import API, GENERATIONS, SECRET_FIELDS, ApiDescription, Field

__all__ = [
    "Message",
    "MessageEnum",
    "message_class",
    "enum_class",
    "all_message_classes",
    "all_enum_classes",
    "generation_of",
    "field_annotation",
    "parse_timestamp",
    "format_timestamp",
    "register_html_renderer",
]

_MODULE = sys.modules[__name__]

# Filled by the notebook layer (cards); the wire layer only looks them up.
_HTML_RENDERERS: dict[tuple[str, str], Callable[[Message], str]] = {}


def register_html_renderer(message_name: str, render: Callable[[Message], str], generation: str = "legacy") -> None:
    """Give a message class a ``_repr_html_`` (used by the notebook layer's cards).

    Renderers are per generation (a name both generations have is two classes, whose fields may
    differ); ``message_name="*"`` renders every message of ``generation`` that has none of its own.
    Classes not built yet (the workspaces ones) may be named: the renderer is looked up when shown.
    """
    _HTML_RENDERERS[(generation, message_name)] = render


class MessageEnum(str, enum.Enum):
    """Base of the API's enums: members are their wire names, and compare equal to them."""

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


# -- timestamps ---------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(text: str) -> datetime:
    """RFC 3339 (any fraction length, ``Z`` or offset) -> aware UTC ``datetime``."""
    m = _RFC3339.match(text)
    if not m:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if zone in ("Z", "z"):
        tz = timezone.utc
    else:
        sign = 1 if zone[0] == "+" else -1
        from datetime import timedelta

        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    value = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz)
    return value.astimezone(timezone.utc)


def format_timestamp(value: datetime) -> str:
    """Aware ``datetime`` -> RFC 3339 in UTC with ``Z``; naive values are taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


# -- field codecs ---------------------------------------------------------------------------
# One coerce (python input -> python value) and one encode/decode pair per scalar type.


class _FieldError(Exception):
    """Raised by codecs; the message class adds which message and field."""


def _coerce_string(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise _FieldError(f"expected str, got {type(v).__name__}")


def _coerce_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise _FieldError(f"expected int, got {type(v).__name__}")
    return v


def _coerce_int32(v: Any) -> int:
    v = _coerce_int(v)
    if not -(2**31) <= v < 2**31:
        raise _FieldError(f"{v} does not fit in 32 bits")
    return v


def _coerce_int64(v: Any) -> int:
    if isinstance(v, str):
        try:
            v = int(v)
        except ValueError:
            raise _FieldError(f"expected an integer, got {v!r}") from None
    v = _coerce_int(v)
    if not -(2**63) <= v < 2**64:
        raise _FieldError(f"{v} does not fit in 64 bits")
    return v


def _coerce_double(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _FieldError(f"expected a number, got {type(v).__name__}")
    return float(v)


def _coerce_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _FieldError(f"expected bool, got {type(v).__name__}")
    return v


def _coerce_bytes(v: Any) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, str):
        # The legacy client took bytes fields (page tokens, digests) as base64 text; so do we.
        try:
            return base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError):
            raise _FieldError("expected bytes, or base64 text as the legacy client took") from None
    raise _FieldError(f"expected bytes, got {type(v).__name__}")


def _coerce_timestamp(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    if isinstance(v, str):
        try:
            return parse_timestamp(v)
        except ValueError as e:
            raise _FieldError(str(e)) from None
    raise _FieldError(f"expected datetime or RFC 3339 str, got {type(v).__name__}")


def _identity(v: Any) -> Any:
    return v


def _decode_int64(v: Any) -> int:
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            raise _FieldError(f"expected an integer string, got {v!r}") from None
    return _coerce_int(v)


def _decode_double(v: Any) -> float:
    if isinstance(v, str):  # proto3 JSON spells non-finite doubles as strings
        if v in ("NaN", "Infinity", "-Infinity"):
            return float(v.replace("Infinity", "inf"))
        raise _FieldError(f"expected a number, got {v!r}")
    return _coerce_double(v)


def _encode_double(v: float) -> Any:
    if math.isfinite(v):
        return v
    return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")


def _decode_bytes(v: Any) -> bytes:
    if not isinstance(v, str):
        raise _FieldError(f"expected a base64 string, got {type(v).__name__}")
    try:
        return base64.b64decode(v + "=" * (-len(v) % 4), altchars=b"-_" if ("-" in v or "_" in v) else None)
    except (binascii.Error, ValueError):
        raise _FieldError("expected a base64 string") from None


def _encode_bytes(v: bytes) -> str:
    return base64.b64encode(v).decode("ascii")


def _decode_timestamp(v: Any) -> datetime:
    if not isinstance(v, str):
        raise _FieldError(f"expected an RFC 3339 string, got {type(v).__name__}")
    try:
        return parse_timestamp(v)
    except ValueError as e:
        raise _FieldError(str(e)) from None


# type -> (coerce python input, decode wire value, encode python value, default)
_SCALARS: dict[str, tuple[Callable, Callable, Callable, Any]] = {
    "string": (_coerce_string, _coerce_string, _identity, ""),
    "int32": (_coerce_int32, _coerce_int32, _identity, 0),
    "int64": (_coerce_int64, _decode_int64, str, 0),
    "double": (_coerce_double, _decode_double, _encode_double, 0.0),
    "bool": (_coerce_bool, _coerce_bool, _identity, False),
    "bytes": (_coerce_bytes, _decode_bytes, _encode_bytes, b""),
    "timestamp": (_coerce_timestamp, _decode_timestamp, format_timestamp, None),
    "object": (_identity, _identity, _identity, None),
}

PYTHON_TYPES = {
    "string": "str", "int32": "int", "int64": "int", "double": "float", "bool": "bool",
    "bytes": "bytes", "timestamp": "datetime", "object": "Any",
}


class _Codec:
    """How one field's single value is checked, decoded from and encoded to the wire."""

    __slots__ = ("type", "classes", "is_enum", "coerce", "decode", "encode", "default")

    def __init__(self, field: Field, classes: _Classes) -> None:
        self.type = field.type
        self.classes = classes
        self.is_enum = classes.api.is_enum(field.type)
        if field.type in _SCALARS:
            self.coerce, self.decode, self.encode, self.default = _SCALARS[field.type]
        elif self.is_enum:
            self.coerce = self.decode = self._enum_value
            self.encode = str
            self.default = None  # resolved lazily: enum classes are built after codecs
        elif classes.api.is_message(field.type):
            self.coerce = self._message_value
            self.decode = self._message_from_wire
            self.encode = _message_to_wire
            self.default = None
        else:
            raise ValueError(f"unknown type {field.type!r} in the API description")

    def _enum_value(self, v: Any) -> Any:
        cls = self.classes.enum(self.type)
        if isinstance(v, cls):
            return v
        if isinstance(v, str):
            try:
                return cls(v)
            except ValueError:
                # Accept an unknown value so that a newer server's enum member is not fatal;
                # user input is checked more strictly in Message.__setattr__.
                return v
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(cls.__members__):
            return list(cls)[v]  # proto3 JSON allows enum numbers
        raise _FieldError(f"expected one of {', '.join(cls.__members__)}, got {v!r}")

    def _message_value(self, v: Any) -> Message:
        cls = self.classes.message(self.type)
        if isinstance(v, cls):
            return v
        if isinstance(v, Mapping):
            return cls._from_mapping(v)
        raise _FieldError(f"expected {self.type} or dict, got {type(v).__name__}")

    def _message_from_wire(self, v: Any) -> Message:
        if not isinstance(v, Mapping):
            raise _FieldError(f"expected a JSON object, got {type(v).__name__}")
        return self.classes.message(self.type).from_wire(v)


def _message_to_wire(m: Message) -> dict[str, Any]:
    return m.to_wire()


class _FieldSpec:
    """A field with its codec and the container it lives in (single, repeated, map)."""

    __slots__ = ("field", "codec", "name", "json")

    def __init__(self, field: Field, classes: _Classes) -> None:
        self.field = field
        self.codec = _Codec(field, classes)
        self.name = field.name
        self.json = field.json

    @property
    def default(self) -> Any:
        if self.field.repeated:
            return []
        if self.field.map:
            return {}
        if self.codec.default is None and self.codec.is_enum:
            return next(iter(self.codec.classes.enum(self.field.type)))
        return self.codec.default

    def coerce(self, value: Any) -> Any:
        if self.field.repeated:
            if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
                raise _FieldError(f"expected a list, got {type(value).__name__}")
            return [self.codec.coerce(v) for v in value]
        if self.field.map:
            if not isinstance(value, Mapping):
                raise _FieldError(f"expected a dict, got {type(value).__name__}")
            return {str(k): self.codec.coerce(v) for k, v in value.items()}
        return self.codec.coerce(value)

    def decode(self, value: Any) -> Any:
        if self.field.repeated:
            if not isinstance(value, list):
                raise _FieldError(f"expected a JSON array, got {type(value).__name__}")
            return [self.codec.decode(v) for v in value]
        if self.field.map:
            if not isinstance(value, Mapping):
                raise _FieldError(f"expected a JSON object, got {type(value).__name__}")
            return {k: self.codec.decode(v) for k, v in value.items()}
        return self.codec.decode(value)

    def encode(self, value: Any, empty_collections: bool = False) -> Any:
        encode = self.codec.encode
        if empty_collections and encode is _message_to_wire:
            def encode(m: Message) -> dict[str, Any]:
                return m.to_wire(empty_collections=True)
        if self.field.repeated:
            return [encode(v) for v in value]
        if self.field.map:
            return {k: encode(v) for k, v in value.items()}
        return encode(value)

    def annotation(self) -> str:
        return field_annotation(self.field)


def field_annotation(field: Field | Any) -> str:
    """A field's (or a REST parameter's) python type as text: ``list[str]``, ``dict[str, int]``, ``V2Deployment``."""
    base = PYTHON_TYPES.get(field.type, field.type)
    if field.repeated:
        return f"list[{base}]"
    if getattr(field, "map", False):
        return f"dict[str, {base}]"
    return base


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, MessageEnum):
        return value.value
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Message:
    """Base of every API message.

    Build one with snake_case keywords (``StorageProject(display_name="x")``);
    nested messages may be given as messages or as dicts with snake_case or
    wire (camelCase) keys. ``to_wire()``/``from_wire()`` convert to and from the
    JSON the gateway speaks; ``to_dict()`` gives plain python data.
    """

    __slots__ = ("_values", "_unknown")

    _generation: ClassVar[str] = "legacy"  # the API generation whose description made the class
    _specs: ClassVar[dict[str, _FieldSpec]] = {}
    _by_json: ClassVar[dict[str, _FieldSpec]] = {}

    def __init__(self, **fields: Any) -> None:
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_unknown", {})
        for name, value in fields.items():
            self._set(self._spec_for_keyword(name), value)

    # -- construction -----------------------------------------------------------------

    @classmethod
    def _spec_for_keyword(cls, name: str) -> _FieldSpec:
        spec = cls._specs.get(name) or cls._by_json.get(name)
        if spec is None and name == "property":
            spec = cls._specs.get("_property")
        if spec is None:
            valid = ", ".join(cls._specs) or "(none: this message has no fields)"
            raise TypeError(f"{cls.__name__} has no field {name!r}; valid fields: {valid}")
        return spec

    def _set(self, spec: _FieldSpec, value: Any) -> None:
        if value is None:
            self._values.pop(spec.name, None)
            return
        try:
            coerced = spec.coerce(value)
        except _FieldError as e:
            raise TypeError(f"{type(self).__name__}.{spec.name}: {e}") from None
        if spec.codec.is_enum:
            values = coerced if isinstance(coerced, list) else list(coerced.values()) if isinstance(coerced, dict) else [coerced]
            bad = [v for v in values if not isinstance(v, MessageEnum)]
            if bad:
                allowed = ", ".join(spec.codec.classes.enum(spec.field.type).__members__)
                raise ValueError(f"{type(self).__name__}.{spec.name}: {bad[0]!r} is not one of {allowed}")
        self._values[spec.name] = coerced

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any]) -> Message:
        """From a dict of python values keyed by snake_case or wire names."""
        return cls(**dict(data))

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Message:
        """Decode the gateway's JSON (camelCase keys). Unknown keys are kept, not fatal."""
        self = cls.__new__(cls)
        values: dict[str, Any] = {}
        unknown: dict[str, Any] = {}
        for key, raw in data.items():
            spec = cls._by_json.get(key) or cls._specs.get(key)
            if spec is None:
                unknown[key] = raw
                continue
            if raw is None:
                continue
            try:
                values[spec.name] = spec.decode(raw)
            except _FieldError as e:
                raise ValueError(f"{cls.__name__}.{spec.name} ({key}): {e}") from None
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_unknown", unknown)
        return self

    # -- access -------------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        spec = type(self)._specs.get(name)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}; valid fields: {', '.join(type(self)._specs)}")
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        value = spec.default
        if isinstance(value, (list, dict)):
            # Let ``msg.items.append(x)`` stick, as with a proto repeated field.
            values[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        self._set(self._spec_for_keyword(name), value)

    def __delattr__(self, name: str) -> None:
        self._values.pop(self._spec_for_keyword(name).name, None)

    def __dir__(self) -> list[str]:
        return sorted(set(type(self)._specs) | {"to_wire", "to_dict", "from_wire", "unknown_fields", "fields"})

    @property
    def unknown_fields(self) -> dict[str, Any]:
        """Wire fields a newer server sent that this description does not know."""
        return dict(self._unknown)

    @classmethod
    def fields(cls) -> tuple[Field, ...]:
        return tuple(s.field for s in cls._specs.values())

    def is_set(self, name: str) -> bool:
        return self._spec_for_keyword(name).name in self._values

    # -- conversion -----------------------------------------------------------------------

    def to_wire(self, *, empty_collections: bool = False) -> dict[str, Any]:
        """The proto3 JSON object the gateway expects (unset fields left out).

        ``empty_collections=True`` writes unset lists and maps as ``[]`` and ``{}``, in
        nested messages too, as the real gateway answers (a server's choice; clients
        send them left out).
        """
        out = {}
        specs = type(self)._specs
        for name, value in self._values.items():
            spec = specs[name]
            if (spec.field.repeated or spec.field.map) and not value and not empty_collections:
                continue
            out[spec.json] = spec.encode(value, empty_collections)
        if empty_collections:
            for spec in specs.values():
                if (spec.field.repeated or spec.field.map) and spec.json not in out:
                    out[spec.json] = [] if spec.field.repeated else {}
        out.update(self._unknown)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Set fields as plain python data (nested messages as dicts), snake_case keys."""
        return {name: _plain(value) for name, value in self._values.items()}

    # -- dunder -------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.to_wire() == other.to_wire()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]  # mutable, like proto messages

    def __repr__(self) -> str:
        parts = []
        cls_name = type(self).__name__
        for name, value in self._values.items():
            if (cls_name, name) in SECRET_FIELDS:
                text = "<hidden>"
            elif isinstance(value, list) and len(value) > 3:
                text = f"[{len(value)} items]"
            elif isinstance(value, datetime):
                text = f"'{format_timestamp(value)}'"
            else:
                text = _short(value)
            parts.append(f"{name}={text}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _repr_html_(self) -> str | None:
        render = (_HTML_RENDERERS.get((self._generation, type(self).__name__))
                  or _HTML_RENDERERS.get((self._generation, "*")))
        return render(self) if render else None

    def __reduce__(self) -> tuple[Any, ...]:
        if self._generation == "legacy":  # as pickles made before the second generation spell it
            return (_restore, (type(self).__name__, self.to_wire()))
        return (_restore, (type(self).__name__, self.to_wire(), self._generation))

    def __copy__(self) -> Message:
        return type(self).from_wire(self.to_wire())

    def __deepcopy__(self, memo: dict) -> Message:
        return self.__copy__()


def _restore(name: str, wire: dict[str, Any], generation: str = "legacy") -> Message:
    return message_class(name, generation).from_wire(wire)


# -- building the classes ----------------------------------------------------------------

# Where each generation's classes live: the legacy ones here (built at import), the others in
# a module of their own, built when it is first imported (so importing the package costs no more).
GENERATION_MODULES = {"legacy": __name__, "workspaces": "mlops_nb.wire.workspaces"}


class _Classes:
    """One generation's message and enum classes, and the module they are attributes of."""

    def __init__(self, api: ApiDescription, module: Any) -> None:
        self.api = api
        self.module = module
        self.messages: dict[str, type[Message]] = {}
        self.enums: dict[str, type[MessageEnum]] = {}

    def message(self, name: str) -> type[Message]:
        try:
            return self.messages[name]
        except KeyError:
            raise KeyError(f"no message named {name!r} in the {self.api.generation} API description"
                           f"{_elsewhere(name, self.api.generation)}") from None

    def enum(self, name: str) -> type[MessageEnum]:
        try:
            return self.enums[name]
        except KeyError:
            raise KeyError(f"no enum named {name!r} in the {self.api.generation} API description") from None


_GENERATIONS: dict[str, _Classes] = {}


def _elsewhere(name: str, generation: str) -> str:
    """Where a message missing from one generation is (for the error)."""
    from mlops_nb.api import description

    others = [g for g in GENERATIONS if g != generation and name in description(g).messages]
    return f" (the {others[0]} generation has it: message_class({name!r}, {others[0]!r}))" if others else ""


def _classes(generation: str) -> _Classes:
    found = _GENERATIONS.get(generation)
    if found is None:
        if generation not in GENERATION_MODULES:
            raise ValueError(f"no API generation {generation!r}; known: {', '.join(GENERATIONS)}")
        import importlib

        importlib.import_module(GENERATION_MODULES[generation])  # builds them (see build_classes)
        found = _GENERATIONS[generation]
    return found


def message_class(name: str, generation: str = "legacy") -> type[Message]:
    """The message class named ``name`` (e.g. ``"StorageProject"``) of an API generation
    (``"legacy"``, or ``"workspaces"``, whose classes are built on first use)."""
    return _classes(generation).message(name)


def enum_class(name: str, generation: str = "legacy") -> type[MessageEnum]:
    return _classes(generation).enum(name)


def all_message_classes(generation: str = "legacy") -> dict[str, type[Message]]:
    return dict(_classes(generation).messages)


def all_enum_classes(generation: str = "legacy") -> dict[str, type[MessageEnum]]:
    return dict(_classes(generation).enums)


def generation_of(message: Message | type[Message]) -> str:
    """The API generation (``"legacy"`` or ``"workspaces"``) a message or message class belongs to."""
    return message._generation


def _message_doc(name: str, specs: dict[str, _FieldSpec], generation: str) -> str:
    where = "" if generation == "legacy" else f" ({generation} generation)"
    lines = [f"{name}: a message of the MLOps API{where}.", ""]
    if specs:
        lines.append("Fields (python name: type, wire name):")
        lines += [f"    {s.name}: {s.annotation()}  (``{s.json}``)" for s in specs.values()]
    else:
        lines.append("This message has no fields; it is sent as ``{}``.")
    return "\n".join(lines)


class _OnFirstUse:
    """A class attribute made from its class when first read, then kept (replacing this).

    The message classes' docstrings and signatures: written for the few that ``help()``,
    IDEs and ``inspect.signature`` look at, not for every class at import. Python reads a
    class's ``__doc__`` through such a descriptor too, for the class and its instances.
    """

    __slots__ = ("make", "name")

    def __init__(self, make: Callable[[type[Message]], Any]) -> None:
        self.make = make
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type[Message]) -> Any:
        value = self.make(owner)
        type.__setattr__(owner, self.name, value)
        return value


def _signature(cls: type[Message]) -> inspect.Signature:
    return inspect.Signature([
        inspect.Parameter(s.name if s.name.isidentifier() and not s.name.startswith("_") else s.json,
                          inspect.Parameter.KEYWORD_ONLY, default=None, annotation=f"{s.annotation()} | None")
        for s in cls._specs.values()
    ])


def build_classes(api: ApiDescription, module: Any) -> list[str]:
    """Build ``api``'s message and enum classes as attributes of ``module`` (once per generation);
    returns their names. The workspaces generation's module calls this when first imported."""
    if api.generation in _GENERATIONS:
        raise RuntimeError(f"the {api.generation} generation's classes are built already")
    classes = _GENERATIONS[api.generation] = _Classes(api, module)
    module_name = module.__name__
    for name, values in api.enums.items():
        cls = MessageEnum(name, [(v, v) for v in values], module=module_name, qualname=name)  # type: ignore[call-overload]
        cls.__doc__ = f"{name}: an enum of the MLOps API. Values: {', '.join(values)}."
        classes.enums[name] = cls
        setattr(module, name, cls)
    for name, fields in api.messages.items():
        specs = {f.name: _FieldSpec(f, classes) for f in fields}
        namespace = {
            "__slots__": (),
            "__module__": module_name,
            "__qualname__": name,
            "__doc__": _OnFirstUse(lambda cls: _message_doc(cls.__name__, cls._specs, cls._generation)),
            "__signature__": _OnFirstUse(_signature),
            "_generation": api.generation,
            "_specs": specs,
            "_by_json": {s.json: s for s in specs.values()},
        }
        cls = type(name, (Message,), namespace)
        classes.messages[name] = cls
        setattr(module, name, cls)
    return sorted(classes.messages) + sorted(classes.enums)


__all__ += build_classes(API, _MODULE)
