#!/usr/bin/env python3
"""Regenerate ``mlops_nb/api/description.json`` from the legacy client's wheel.

Usage::

    pip download --no-deps -d /tmp/wheel h2o-mlops==1.0.1
    python scripts/regen_api_description.py /tmp/wheel/h2o_mlops-1.0.1-py3-none-any.whl

Shared parts live in ``api_description_common.py``.

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

import argparse
import ast
import re
import zipfile
from pathlib import Path

from api_description_common import (
    API_DIR,
    INT64_FIELDS,
    add_type,
    class_node,
    glue_entities,
    is_read_only,
    output_argument,
    snake,
    write_description,
)

ROOT = "h2o_mlops/_autogen/_h2o_mlops_client"
GLUE = "h2o_mlops/_autogen/h2o_mlops_client"
OUT = API_DIR / "description.json"

SERVERS = {
    "storage": "/storage",
    "deployer": "/deployer",
    "ingest": "/ingest",
    "model_monitoring": "/model-monitoring",
    # Artifact blobs are served by the storage gateway.
    "bytestream": "/storage",
}


SCALARS = {"str": "string", "int": "int32", "float": "double", "bool": "bool",
           "datetime": "timestamp", "object": "object", "date": "date"}


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
            "read_only": is_read_only(verb, path, path.rsplit("/", 1)[-1]),
            "path_params": path_params,
            "query_params": query_params,
        })
    return methods


def main(wheel: str, out: Path) -> None:
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
                add_type(types, tname, spec)
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
    write_description(out, Path(wheel).name, services, types, servers=SERVERS)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", help="h2o_mlops-1.0.1-py3-none-any.whl")
    output_argument(parser, OUT)
    args = parser.parse_args()
    main(args.wheel, args.out)
