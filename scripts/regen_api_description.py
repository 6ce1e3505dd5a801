#!/usr/bin/env python3
"""Regenerate ``mlops_nb/api/description.json`` from the legacy client's wheel.

Usage::

    pip download --no-deps -d /tmp/wheel h2o-mlops==1.0.1
    python scripts/regen_api_description.py /tmp/wheel/h2o_mlops-1.0.1-py3-none-any.whl

The wheel's generated modules are read with ``ast`` only: nothing from it is
imported or executed, and no prose is carried over. What we keep is facts:
servers, services, methods (verb, path, request/response, path and query
parameters), messages (python name, JSON name, type) and enums (values).

Three facts the generated code does not state are recovered here:

* ``bytes`` fields: the generator validates them with a base64 pattern.
* ``int64`` fields: they are typed ``str`` like any string, so they are listed
  by name in ``INT64_FIELDS`` (counts, sizes and offsets of the proto files).
* ``read_only`` methods, which change nothing on the server and so are safe to
  send again: every REST GET, and the RPCs whose names say they only read
  (``READ_ONLY_RPC_PREFIXES``, ``READ_ONLY_RPCS``). The client retries these,
  and only these, after an answer is lost.
"""

from __future__ import annotations

import ast
import json
import re
import sys
import zipfile
from pathlib import Path

ROOT = "h2o_mlops/_autogen/_h2o_mlops_client"
GLUE = "h2o_mlops/_autogen/h2o_mlops_client"
OUT = Path(__file__).resolve().parent.parent / "mlops_nb" / "api" / "description.json"

SERVERS = {
    "storage": "/storage",
    "deployer": "/deployer",
    "ingest": "/ingest",
    "model_monitoring": "/model-monitoring",
    # Artifact blobs are served by the storage gateway.
    "bytestream": "/storage",
}

INT64_FIELDS = {
    "int64_value", "count", "user_project_count", "experiment_count",
    "total_project_count", "size", "committed_size", "write_offset",
    "read_offset", "read_limit", "row_count", "col_count", "event_count",
    "total_predictions", "total_deployments",
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


def is_read_only(verb: str, path: str) -> bool:
    if verb == "GET":
        return True
    rpc = path.rsplit("/", 1)[-1]
    return rpc in READ_ONLY_RPCS or rpc.startswith(READ_ONLY_RPC_PREFIXES)


SCALARS = {"str": "string", "int": "int32", "float": "double", "bool": "bool",
           "datetime": "timestamp", "object": "object", "date": "date"}


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z][a-z])", r"_\1\2", name).lower()


def class_node(tree: ast.Module) -> ast.ClassDef:
    return next(n for n in tree.body if isinstance(n, ast.ClassDef))


def literal_assign(cls: ast.ClassDef, name: str):
    for node in cls.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return None


def parse_type(spec: str) -> dict:
    m = re.fullmatch(r"list\[(.+)\]", spec)
    if m:
        return {**parse_type(m.group(1)), "repeated": True}
    m = re.fullmatch(r"dict\(str, (.+)\)", spec)
    if m:
        return {**parse_type(m.group(1)), "map": True}
    return {"type": SCALARS.get(spec, spec)}


def read_model(source: str) -> tuple[str, dict]:
    tree = ast.parse(source)
    cls = class_node(tree)
    types = literal_assign(cls, "openapi_types")
    is_enum = any(isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name)
                  and n.targets[0].id == "allowable_values" for n in cls.body)
    if is_enum:
        values = [
            ast.literal_eval(n.value)
            for n in cls.body
            if isinstance(n, ast.Assign)
            and isinstance(n.targets[0], ast.Name)
            and n.targets[0].id.isupper()
            and isinstance(n.value, ast.Constant)
        ]
        if values:
            return cls.name, {"kind": "enum", "values": values}
    json_names = literal_assign(cls, "attribute_map") or {}
    base64_fields = set(re.findall(r"if [^\n]*?\n?\s*(\w+) is not None and not re\.search\(r'\^\(\?:\[A-Za-z0-9", source))
    fields = []
    for py_name, spec in types.items():
        field = {"name": py_name, "json": json_names[py_name], **parse_type(spec)}
        if field["type"] == "string" and py_name in base64_fields:
            field["type"] = "bytes"
        elif field["type"] == "string" and py_name in INT64_FIELDS:
            field["type"] = "int64"
        fields.append(field)
    return cls.name, {"kind": "message", "fields": fields}


def method_params(fn: ast.FunctionDef) -> tuple[list, list]:
    """Path and query parameters as (python name, wire name, type) records."""
    doc = ast.get_docstring(fn) or ""
    doc_types = dict(re.findall(r":type (\w+): ([\w\[\], ]+)", doc))
    path, query = [], []
    for node in ast.walk(fn):
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript)
                and isinstance(node.targets[0].value, ast.Name)
                and node.targets[0].value.id == "path_params"):
            wire = node.targets[0].slice.value
            py = node.value.slice.value
            path.append({"name": py, "wire": wire, **parse_type(doc_types.get(py, "str"))})
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "append" and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "query_params"):
            wire = node.args[0].elts[0].value
            py = node.args[0].elts[1].slice.value
            query.append({"name": py, "wire": wire, **parse_type(doc_types.get(py, "str"))})
    return path, query


def read_api(source: str, server: str) -> list[dict]:
    tree = ast.parse(source)
    cls = class_node(tree)
    methods = []
    for fn in cls.body:
        if not (isinstance(fn, ast.FunctionDef) and fn.name.endswith("_with_http_info")):
            continue
        call = next(
            n for n in ast.walk(fn)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "call_api"
        )
        path, verb = call.args[0].value, call.args[1].value
        response = next(k.value.value for k in call.keywords if k.arg == "response_type")
        doc = ast.get_docstring(fn) or ""
        body = re.search(r":type body: (\w+)", doc)
        path_params, query_params = method_params(fn)
        streaming = response.startswith("StreamResultOf")
        methods.append({
            "python": fn.name[: -len("_with_http_info")],
            "verb": verb,
            "path": path,
            "request": body.group(1) if body else None,
            "response": response.removeprefix("StreamResultOf"),
            "streaming": streaming,
            "read_only": is_read_only(verb, path),
            "path_params": path_params,
            "query_params": query_params,
        })
    return methods


def glue_entities(sources: dict[str, str]) -> dict[tuple[str, str], str]:
    """(server, API class name) -> the attribute the legacy glue gives it."""
    entities = {}
    for server, source in sources.items():
        tree = ast.parse(source)
        # Public names are the properties; they return private attributes (``self._x``).
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


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        read = lambda n: zf.read(n).decode()  # noqa: E731
        glue = {s: read(f"{GLUE}/{s}.py") for s in SERVERS if f"{GLUE}/{s}.py" in names}
        entities = glue_entities(glue)
        # The storage glue subclasses a few APIs; map those back to the generated names.
        aliases = {"ExtendedArtifactServiceApi": "ArtifactServiceApi",
                   "_DeprecatedDeploymentServiceApi": "DeploymentServiceApi",
                   "_DeprecatedDeploymentEnvironmentServiceApi": "DeploymentEnvironmentServiceApi"}
        entities = {(s, aliases.get(c, c)): e for (s, c), e in entities.items()}
        # The legacy client reaches ByteStream as ``storage.bytestream``.
        entities[("bytestream", "ByteStreamApi")] = "bytestream"
        types: dict[str, dict] = {}
        services = []
        for server, _prefix in SERVERS.items():
            for name in sorted(n for n in names if n.startswith(f"{ROOT}/{server}/models/") and not n.endswith("__init__.py")):
                tname, spec = read_model(read(name))
                if tname in types and types[tname] != spec:
                    raise SystemExit(f"{tname} differs between servers")
                types[tname] = spec
            for name in sorted(n for n in names if n.startswith(f"{ROOT}/{server}/api/") and n.endswith("_api.py")):
                source = read(name)
                api_class = class_node(ast.parse(source)).name
                methods = read_api(source, server)
                proto_service = {m["path"].split("/")[1] for m in methods if m["path"].count("/") == 2}
                service_name = api_class.removesuffix("Api")
                services.append({
                    "server": server,
                    "name": service_name,
                    "proto": sorted(proto_service)[0] if proto_service else None,
                    "entity": entities.get((server, api_class), snake(service_name.removesuffix("Service"))),
                    "methods": methods,
                })
    description = {
        "source": Path(wheel).name,
        "servers": SERVERS,
        "services": services,
        "enums": {k: v["values"] for k, v in sorted(types.items()) if v["kind"] == "enum"},
        "messages": {k: v["fields"] for k, v in sorted(types.items()) if v["kind"] == "message"},
    }
    OUT.write_text(json.dumps(description, indent=1) + "\n")
    n_methods = sum(len(s["methods"]) for s in services)
    print(f"{OUT}: {len(services)} services, {n_methods} methods, "
          f"{len(description['messages'])} messages, {len(description['enums'])} enums")


if __name__ == "__main__":
    main(sys.argv[1])
