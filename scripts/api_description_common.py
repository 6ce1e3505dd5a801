"""What the two description generators share (``regen_api_description.py`` for the legacy
generation, ``regen_api_description_workspaces.py`` for the workspaces generation).

Both read a wheel's source with ``ast`` only; nothing from a wheel is imported or run.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path

API_DIR = Path(__file__).resolve().parent.parent / "mlops_nb" / "api"

# int64 fields travel as JSON strings and every generator types them ``str``, like any string,
# so they are known by name: counts, sizes and offsets of the proto files.
INT64_FIELDS = {
    "int64_value", "count", "user_project_count", "experiment_count",
    "total_project_count", "size", "committed_size", "write_offset",
    "read_offset", "read_limit", "row_count", "col_count", "event_count",
    "total_predictions", "total_deployments",
    # Workspaces generation only.
    "size_bytes", "error_rows_count", "total_size",
}

# Get*, List*, Count*, BatchGet* (a batch of gets), Is* (a yes/no question): reads by the
# names the MLOps protos use. Everything else (Create, Update, Delete, Link, Tag, Share,
# Deploy, Write, ...) is a write, and so is anything not named here, to be safe.
READ_ONLY_RPC_PREFIXES = ("Get", "List", "Count", "BatchGet", "Is")
READ_ONLY_RPCS = {
    "WhoAmI",            # the caller's user
    "Read",              # ByteStream: an artifact's bytes
    "QueryWriteStatus",  # ByteStream: how much of an upload has arrived
    "ExportMetric",      # model monitoring: streams metrics out
}
# REST custom methods (``/v1/{name}:cancel``) that the gateway maps to GET but that change
# state: the batch service cancels a job with a GET.
WRITING_GET_METHODS = {"cancel"}


def is_read_only(verb: str, path: str, rpc: str) -> bool:
    """Whether a call changes nothing on the server, so sending it again is safe.

    Every GET is a read except the custom methods in ``WRITING_GET_METHODS``; any other verb
    is a read only when its RPC name says so.
    """
    if verb == "GET":
        custom = path.rsplit(":", 1)[1] if ":" in path.rsplit("/", 1)[-1] else None
        return custom not in WRITING_GET_METHODS
    return rpc in READ_ONLY_RPCS or rpc.startswith(READ_ONLY_RPC_PREFIXES)


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z][a-z])", r"_\1\2", name).lower()


def class_node(tree: ast.Module) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef))


def glue_entities(sources: dict[str, str]) -> dict[tuple[str, str], str]:
    """(server, API class name) -> the attribute a client's glue gives it.

    The glue keeps each service API in a private attribute (``self._x = XApi(...)``) and
    publishes it through a property that returns it; the property's name is the entity.
    """
    entities = {}
    for server, source in sources.items():
        tree = ast.parse(source)
        public = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list
            ):
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Attribute):
                        public[ret.value.attr] = node.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute)
                    and isinstance(node.targets[0].value, ast.Name) and node.targets[0].value.id == "self"
                    and isinstance(node.value, ast.Call)):
                api_class = node.value.func
                name = api_class.attr if isinstance(api_class, ast.Attribute) else api_class.id
                private = node.targets[0].attr
                entities[(server, name)] = public.get(private, private.lstrip("_"))
    return entities


def add_type(types: dict[str, dict], name: str, spec: dict) -> None:
    """Keep one definition per type name; two different ones under one name is an error."""
    if name in types and types[name] != spec:
        raise SystemExit(f"{name} is defined twice, differently")
    types[name] = spec


def write_description(out: Path, source: str, services: list[dict], types: dict[str, dict], **extra) -> None:
    """Write a description file and print its counts."""
    description = {
        "source": source,
        **extra,
        "services": services,
        "enums": {k: v["values"] for k, v in sorted(types.items()) if v["kind"] == "enum"},
        "messages": {k: v["fields"] for k, v in sorted(types.items()) if v["kind"] == "message"},
    }
    out.write_text(json.dumps(description, indent=1) + "\n")
    n_methods = sum(len(s["methods"]) for s in services)
    print(f"{out}: {len(services)} services, {n_methods} methods, "
          f"{len(description['messages'])} messages, {len(description['enums'])} enums")


def output_argument(parser: argparse.ArgumentParser, default: Path) -> None:
    parser.add_argument("--out", type=Path, default=default,
                        help=f"where to write the description (default: {default})")
