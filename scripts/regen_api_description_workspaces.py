#!/usr/bin/env python3
"""Regenerate ``mlops_nb/api/description_workspaces.json``: the workspaces generation of the API.

Usage::

    pip download --no-deps -d /tmp/w165 h2o-mlops==1.6.5
    pip download --no-deps -d /tmp/w154 h2o-mlops==1.5.4
    python scripts/regen_api_description_workspaces.py \\
        /tmp/w165/h2o_mlops-1.6.5-py3-none-any.whl /tmp/w154/h2o_mlops-1.5.4-py3-none-any.whl

MLOps servers from 1.0.0 on (projects became workspaces) are spoken to by ``h2o-mlops`` 1.4.0
and later; no OpenAPI or proto file ships in any wheel. Two wheels are read with ``ast`` only
(nothing imported or run, no prose kept); shared parts live in ``api_description_common.py``.

Where each fact comes from:

* Operations: exactly the calls of the newest client, 1.6.5, in ``h2o_mlops/_client/services``:
  its service classes, their public methods (python names), and per method the verb and path
  of its ``self._http.request`` call (REST style) or the RPC name given to ``self._call`` under
  the class's ``_service_prefix`` (storage, RPC style: ``POST /{proto service}/{RPC}``). The
  entity names are the properties of each module's ``Client`` (``deployer.status``, ...).
  Composite helpers (artifact upload/download through presigned URLs) make no call of their
  own and are not operations; ``get_me`` reads a header, not a message, and is kept apart as
  ``identity``.
* Servers and gateways: ``h2o_mlops/_client/client.py`` joins each service's prefix to the
  MLOps gateway URL (``/storage``, ``/deployer``, ...); the authz service (workspaces, users)
  is on a second gateway at its root (``/v1/workspaces``).
* Discovery: ``h2o_mlops/_core.py`` looks up services ``mlops-api``, ``authz-gateway`` and
  ``secure-store``, the client ``platform`` and the environment's issuer URL.
* Path templates, request bodies, streaming: 1.6.5 types most REST bodies ``Any`` and writes
  paths as f-strings of python names, so each call is matched (same server, verb and path
  shape, same method name where several match) to the complete generated client of 1.5.4
  (``h2o_mlops/_autogen``), whose templates carry the gateway's wire names
  (``/v2/{deployment.name}``) and whose methods type their body (``V2Deployment``; a free
  ``Dict[str, Any]`` body is recorded as ``object``). The generator numbers repeated names
  (``{name_1}``, ``{name_2}``); they are the same wire name and are written ``{name}``.
* Query parameters: the wire names the 1.6.5 method puts in ``params`` (also through its
  module's small helpers), typed by the method's annotations (1.5.4's where 1.6.5 says ``Any``).
* Messages and enums: the models 1.6.5 generated from the servers' swagger files
  (``h2o_mlops/_client/models/*.py``, datamodel-codegen); a type they lack (the inline request
  bodies 1.6.5 rewrote by hand in ``compat.py`` with untyped fields) comes from 1.5.4's model
  of the same name. Classes repeated across modules are identical (checked).

Inferred, because neither wheel states it:

* ``int64`` fields: typed ``str`` by both generators; known by name (``INT64_FIELDS``).
* ``bytes`` fields: 1.6.5 types them ``str``; a field is bytes when 1.5.4's model of the same
  name types it ``Union[bytes, str]`` (paging tokens, digests, ByteStream data).
* ``read_only``: every GET but the custom method ``:cancel`` (batch jobs are cancelled with a
  GET); other verbs by the RPC name (``Get``/``List``/``Count``/``BatchGet``/``Is``), the REST
  methods' RPC name being their python name in CamelCase.
* Which resource a ``{name}`` path means: several reads share ``GET /v2/{name}`` and the gateway
  tells them apart by the name's shape (``.../deployments/x`` against ``.../status``), which no
  wheel records. Routes are therefore not unique in this description.
"""

from __future__ import annotations

import argparse
import ast
import re
import zipfile
from pathlib import Path, PurePosixPath

from api_description_common import (
    API_DIR,
    INT64_FIELDS,
    add_type,
    glue_entities,
    is_read_only,
    output_argument,
    write_description,
)

OUT = API_DIR / "description_workspaces.json"
SERVICES = "h2o_mlops/_client/services"
MODELS = "h2o_mlops/_client/models"
AUTOGEN = "h2o_mlops/_autogen/_h2o_mlops_client"
# The 1.5.4 generated packages that hold each 1.6.5 server's operations.
AUTOGEN_PACKAGES = {
    "storage": ("storage",), "deployer": ("deployer/v2",), "monitoring": ("monitoring/v2",),
    "runtime": ("runtime",), "batch": ("batch",), "authz": ("workspace", "user"),
}

SCALARS = {
    "str": "string", "StrictStr": "string", "int": "int32", "StrictInt": "int32",
    "float": "double", "StrictFloat": "double", "bool": "bool", "StrictBool": "bool",
    "datetime": "timestamp", "date": "date", "Any": "object", "bytes": "bytes", "StrictBytes": "bytes",
}


def _name(node: ast.expr) -> str:
    """``X``, ``m.X``: the last part of a (dotted) name."""
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _union_parts(node: ast.expr) -> list[ast.expr]:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union_parts(node.left) + _union_parts(node.right)
    if isinstance(node, ast.Subscript) and _name(node.value) in ("Optional", "Union"):
        inner = node.slice
        return [p for e in (inner.elts if isinstance(inner, ast.Tuple) else [inner]) for p in _union_parts(e)]
    if isinstance(node, ast.Subscript) and _name(node.value) == "Annotated":
        return _union_parts(node.slice.elts[0])
    return [node]


def annotation_type(node: ast.expr) -> dict:
    """A pydantic annotation (either generator's spelling) as ``{"type", "repeated"?, "map"?}``."""
    parts = [p for p in _union_parts(node) if not (isinstance(p, ast.Constant) and p.value is None)]
    names = {_name(p) for p in parts}
    if len(parts) > 1:
        if "bytes" in names:            # Union[bytes, str]: base64 in JSON
            return {"type": "bytes"}
        if names <= {"StrictFloat", "StrictInt", "float", "int"}:
            return {"type": "double"}
        raise SystemExit(f"unknown union {ast.unparse(node)}")
    (part,) = parts
    if isinstance(part, ast.Subscript):
        outer = _name(part.value)
        args = part.slice.elts if isinstance(part.slice, ast.Tuple) else [part.slice]
        if outer in ("List", "list"):
            return {**annotation_type(args[0]), "repeated": True}
        if outer in ("Dict", "dict"):
            value = annotation_type(args[1])
            return {"type": "object"} if value["type"] == "object" else {**value, "map": True}
        raise SystemExit(f"unknown annotation {ast.unparse(node)}")
    name = _name(part)
    return {"type": SCALARS.get(name, name)}


def _field_alias(value: ast.expr | None) -> str | None:
    if isinstance(value, ast.Call) and _name(value.func) == "Field":
        for kw in value.keywords:
            if kw.arg == "alias":
                return kw.value.value
    return None


def read_models(source: str) -> dict[str, dict]:
    """Every enum and message class of a pydantic models module (1.6.5's or 1.5.4's)."""
    types = {}
    for cls in ast.parse(source).body:
        if not isinstance(cls, ast.ClassDef):
            continue
        bases = {_name(b) for b in cls.bases}
        if "Enum" in bases:
            values = [n.value.value for n in cls.body if isinstance(n, ast.Assign)
                      and isinstance(n.value, ast.Constant) and n.targets[0].id.isupper()]
            types[cls.name] = {"kind": "enum", "values": values}
        elif "BaseModel" in bases:
            fields = []
            for node in cls.body:
                if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                        and not ast.unparse(node.annotation).startswith("ClassVar")):
                    py = node.target.id
                    fields.append({"name": py, "json": _field_alias(node.value) or py,
                                   **annotation_type(node.annotation)})
            types[cls.name] = {"kind": "message", "fields": fields}
    return types


def referenced(spec: dict) -> set[str]:
    return {f["type"] for f in spec.get("fields", ())}


# --- 1.5.4: the complete generated client -------------------------------------------------

_NUMBERED = re.compile(r"\{(\w+?)_\d+\}")


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def read_autogen_api(source: str) -> list[dict]:
    """The operations of one 1.5.4 ``*_api.py``: each from its ``_x_serialize`` method."""
    cls = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef))
    functions = {f.name: f for f in cls.body if isinstance(f, ast.FunctionDef)}
    operations = []
    for name, fn in functions.items():
        if not (name.startswith("_") and name.endswith("_serialize")):
            continue
        public = functions[name[1:-len("_serialize")]]
        call = next(n for n in ast.walk(fn) if isinstance(n, ast.Call) and _name(n.func) == "param_serialize")
        keywords = {k.arg: k.value for k in call.keywords}
        annotations = {a.arg: a.annotation for a in public.args.args if a.annotation}
        query = {}
        for node in ast.walk(fn):
            if (isinstance(node, ast.Call) and _name(node.func) == "append"
                    and _name(node.func.value) == "_query_params"):
                wire, value = node.args[0].elts
                py = next(n.id for n in ast.walk(value) if isinstance(n, ast.Name))
                query.setdefault(wire.value, annotation_type(annotations[py]))
        body = next((n.value.id for n in ast.walk(fn) if isinstance(n, ast.Assign)
                     and _name(n.targets[0]) == "_body_params" and isinstance(n.value, ast.Name)), None)
        response = next(n.value for n in ast.walk(public) if isinstance(n, ast.AnnAssign)
                        and _name(n.target) == "_response_types_map")
        response_type = response.values[0].value
        operations.append({
            "python": public.name,
            "verb": keywords["method"].value,
            "path": _NUMBERED.sub(r"{\1}", keywords["resource_path"].value),
            "query": query,
            "body_param": body,
            "body_type": annotation_type(annotations[body])["type"] if body else None,
            "response": response_type.removeprefix("StreamResultOf"),
            "streaming": response_type.startswith("StreamResultOf"),
        })
    return operations


def autogen_match(candidates: list[dict], python: str, verb: str, path: str) -> dict | None:
    same_route = [o for o in candidates if o["verb"] == verb and _shape(o["path"]) == _shape(path)]
    named = [o for o in same_route if o["python"] == python]
    if named:
        return named[0]
    return same_route[0] if len(same_route) == 1 else None


# --- 1.6.5: the newest client's calls -----------------------------------------------------

def _template(node: ast.expr) -> tuple[str, list[str]]:
    """A path argument (string or f-string of names) as a template and its python names."""
    if isinstance(node, ast.Constant):
        return node.value, []
    parts, names = [], []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(value.value)
        else:
            names.append(_name(value.value))
            parts.append("{" + names[-1] + "}")
    return "".join(parts), names


def _query_pairs(fn: ast.FunctionDef, helpers: dict[str, ast.FunctionDef]) -> list[tuple[str, str]]:
    """(wire, python) query parameters a method puts in ``params``, through helpers too."""
    pairs = []
    for node in ast.walk(fn):
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript)
                and _name(node.targets[0].value) == "params" and isinstance(node.value, ast.Name)):
            pairs.append((node.targets[0].slice.value, node.value.id))
        elif isinstance(node, ast.Assign) and _name(node.targets[0]) == "params":
            for dict_node in ast.walk(node.value):
                if isinstance(dict_node, ast.Dict):
                    pairs += [(k.value, v.id) for k, v in zip(dict_node.keys, dict_node.values, strict=True)
                              if isinstance(v, ast.Name)]
            if isinstance(node.value, ast.Call) and _name(node.value.func) in helpers:
                helper = helpers[_name(node.value.func)]
                passed = dict(zip((a.arg for a in helper.args.args), (_name(a) for a in node.value.args), strict=True))
                pairs += [(wire, passed.get(py, py)) for wire, py in _query_pairs(helper, helpers)]
    return pairs


def _camel(python: str) -> str:
    return "".join(part.capitalize() for part in python.rstrip("0123456789").split("_"))


def read_service_module(source: str) -> list[dict]:
    """Each service class of a 1.6.5 ``services/*.py`` with its operations (raw, untyped yet)."""
    tree = ast.parse(source)
    helpers = {f.name: f for f in tree.body if isinstance(f, ast.FunctionDef)}
    services = []
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef) or cls.name == "Client":
            continue
        service_prefix = next((n.value.value for n in cls.body if isinstance(n, ast.Assign)
                               and _name(n.targets[0]) == "_service_prefix"), None)
        operations = []
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef) or fn.name.startswith("_"):
                continue
            params = {a.arg: a.annotation for a in fn.args.args[1:] + fn.args.kwonlyargs}
            rpc_call = next((n for n in ast.walk(fn) if isinstance(n, ast.Call)
                             and _name(n.func) == "_call"), None)
            http_calls = [n for n in ast.walk(fn) if isinstance(n, ast.Call)
                          and _name(n.func) in ("request", "request_raw") and _name(n.func.value) == "_http"]
            # A method with two calls (an old and a new signature) is read by the one whose
            # path is made of the method's own parameters.
            http_calls = [c for c in http_calls if set(_template(c.args[1])[1]) <= set(params)]
            op = {"python": fn.name, "params": params,
                  "returns": _name(fn.returns) if fn.returns is not None else None}
            if rpc_call is not None:
                rpc = rpc_call.args[0].value
                operations.append({**op, "verb": "POST", "path": f"{service_prefix}/{rpc}", "rpc": rpc,
                                   "placeholders": [], "body_param": "body", "query": [],
                                   "raw": False})
            elif http_calls:
                call = http_calls[0]
                path, placeholders = _template(call.args[1])
                keywords = {k.arg: k.value for k in call.keywords}
                body = keywords.get("body")
                operations.append({**op, "verb": call.args[0].value, "path": path, "rpc": _camel(fn.name),
                                   "placeholders": placeholders,
                                   "body_param": body.id if isinstance(body, ast.Name) else None,
                                   "query": _query_pairs(fn, helpers), "raw": _name(call.func) == "request_raw"})
        if operations:
            services.append({"class": cls.name, "proto": service_prefix.lstrip("/") if service_prefix else None,
                             "operations": operations})
    return services


def read_servers(client_source: str) -> tuple[dict[str, str], dict[str, str]]:
    """Prefix and gateway of each server, from how ``client.py`` builds each service's base URL."""
    prefixes, gateways = {}, {}
    for node in ast.walk(ast.parse(client_source)):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and _name(node.value.func) == "ServiceClient"):
            server = _name(node.targets[0]).removesuffix("_http")
            base = node.value.args[0].args[0]  # str(<base>)
            if isinstance(base, ast.BinOp):    # url / "storage"
                prefixes[server], gateways[server] = "/" + base.right.value, "mlops"
            else:                              # authz_url: the second gateway's root
                prefixes[server], gateways[server] = "", base.id.removesuffix("_url")
    return prefixes, gateways


def read_discovery(core_source: str) -> dict:
    """What the 1.6.5 client looks up in H2O AI Cloud discovery, and what for."""
    found: dict[str, dict[str, str]] = {"services": {}, "clients": {}, "environment": {}}
    for call in ast.walk(ast.parse(core_source)):
        if not isinstance(call, ast.Call):
            continue
        for kw in call.keywords:
            for node in ast.walk(kw.value):
                if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute)
                        and node.value.attr in ("services", "clients")
                        and _name(node.value.value) == "_discovery"):
                    found[node.value.attr][node.slice.value] = kw.arg
                elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                        and node.value.attr == "environment"):
                    found["environment"][node.attr] = kw.arg
    return found


def read_identity(authz_source: str) -> dict:
    """``get_me``: the user's id comes in a header of ``GET /me`` on the MLOps gateway."""
    call = next(n for n in ast.walk(ast.parse(authz_source)) if isinstance(n, ast.Call)
                and _name(n.func) == "get_response_header")
    verb, url, header = call.args
    return {"verb": verb.value, "gateway": "mlops", "path": url.values[-1].value, "header": header.value,
            "then": "authz.user.get_user"}


# --- assembling -----------------------------------------------------------------------------

def _param_type(annotation: ast.expr | None, fallback: dict | None) -> dict:
    found = annotation_type(annotation) if annotation is not None else {"type": "string"}
    if found["type"] == "object" and fallback:
        return fallback
    return found


def _param(name: str, wire: str, kind: dict) -> dict:
    return {"name": name, "wire": wire, "type": kind["type"], **({"repeated": True} if kind.get("repeated") else {})}


def build_method(op: dict, autogen: list[dict], types: dict[str, dict], wanted: set[str]) -> tuple[dict, bool]:
    """One operation of the description, and whether 1.5.4 has it."""
    match = autogen_match(autogen, op["python"], op["verb"], op["path"])
    path = match["path"] if match else op["path"]
    wires = re.findall(r"\{([^}]+)\}", path)
    path_params = [_param(py, wire, {"type": "string"}) for py, wire in zip(op["placeholders"], wires, strict=True)]
    query_params = [_param(py, wire, _param_type(op["params"].get(py), (match or {}).get("query", {}).get(wire)))
                    for wire, py in op["query"]]
    request, body_field = None, None
    if op["body_param"]:
        declared = _name(op["params"].get(op["body_param"]) or ast.Name("Any"))
        if declared in types:
            request = declared
        elif match and match["body_type"] and match["body_type"] != "object":
            request = match["body_type"]
        else:
            request = "object"
        # The field the body fills (``*``: the whole request), as 1.5.4 names it where it knows.
        body_param = (match and match["body_param"]) or op["body_param"]
        body_field = "*" if body_param == "body" else body_param
    response = op["returns"] if op["returns"] in types else (match["response"] if match else "object")
    wanted.update(t for t in (request, response) if t not in (None, "object"))
    return {
        "python": op["python"],
        "verb": op["verb"],
        "path": path,
        "request": request,
        "body_field": body_field,
        "response": response,
        "streaming": op["raw"] or bool(match and match["streaming"]),
        "read_only": is_read_only(op["verb"], path, op["rpc"]),
        "path_params": path_params,
        "query_params": query_params,
    }, match is not None


def main(wheel_165: str, wheel_154: str, out: Path) -> None:
    with zipfile.ZipFile(wheel_165) as new, zipfile.ZipFile(wheel_154) as old:
        read_new = lambda n: new.read(n).decode()  # noqa: E731
        read_old = lambda n: old.read(n).decode()  # noqa: E731
        servers, gateways = read_servers(read_new("h2o_mlops/_client/client.py"))

        types: dict[str, dict] = {}
        for name in sorted(new.namelist()):
            if name.startswith(f"{MODELS}/") and name.endswith(".py"):
                source = read_new(name)
                if source.startswith("# generated by datamodel-codegen"):
                    for tname, spec in read_models(source).items():
                        add_type(types, tname, spec)
        old_types: dict[str, dict] = {}
        for name in old.namelist():
            if "/models/" in name and name.startswith(AUTOGEN) and not name.endswith("__init__.py"):
                old_types.update(read_models(read_old(name)))

        services, wanted, only_165 = [], set(), []
        for server in servers:
            source = read_new(f"{SERVICES}/{server}.py")
            entities = glue_entities({server: source})
            autogen = [op for package in AUTOGEN_PACKAGES[server] for name in sorted(old.namelist())
                       if name.startswith(f"{AUTOGEN}/{package}/api/") and name.endswith("_api.py")
                       for op in read_autogen_api(read_old(name))]
            for service in read_service_module(source):
                entity = entities[(server, service["class"])]
                methods = []
                for op in service["operations"]:
                    method, in_154 = build_method(op, autogen, types | old_types, wanted)
                    methods.append(method)
                    if not in_154:
                        only_165.append(f"{server}.{entity}.{op['python']}")
                services.append({
                    "server": server,
                    "name": service["proto"].rsplit(".", 1)[-1] if service["proto"]
                    else service["class"].removesuffix("Api"),
                    "proto": service["proto"],
                    "entity": entity,
                    "methods": methods,
                })

        # Types the 1.6.5 models lack (hand-written inline bodies): 1.5.4's, with what they use.
        while missing := sorted(t for t in wanted | {r for s in types.values() for r in referenced(s)}
                                if t not in types and t not in SCALARS.values()):
            unknown = [t for t in missing if t not in old_types]
            if unknown:
                raise SystemExit(f"types in neither wheel: {unknown}")
            for t in missing:
                add_type(types, t, old_types[t])

        for tname, spec in types.items():
            old_fields = {f["name"]: f["type"] for f in old_types.get(tname, {}).get("fields", ())}
            for field in spec.get("fields", ()):
                if field["type"] == "string" and old_fields.get(field["name"]) == "bytes":
                    field["type"] = "bytes"
                elif field["type"] == "string" and field["name"] in INT64_FIELDS:
                    field["type"] = "int64"

        write_description(
            out, f"{PurePosixPath(wheel_165).name} (typed with {PurePosixPath(wheel_154).name})", services, types,
            generation="workspaces",
            servers=servers,
            gateways=gateways,
            discovery=read_discovery(read_new("h2o_mlops/_core.py")),
            identity=read_identity(read_new(f"{SERVICES}/authz.py")),
            # Calls 1.5.4 does not have: path placeholders are 1.6.5's python names, an untyped
            # body is ``object``.
            only_in_newest_client=only_165,
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel_165", help="h2o_mlops-1.6.5-py3-none-any.whl")
    parser.add_argument("wheel_154", help="h2o_mlops-1.5.4-py3-none-any.whl (or another 1.5.x)")
    output_argument(parser, OUT)
    args = parser.parse_args()
    main(args.wheel_165, args.wheel_154, args.out)
