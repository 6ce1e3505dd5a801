"""The ingest server's ModelIngest: what model an uploaded artifact holds.

``CreateModelIngestion`` reads an uploaded (AVAILABLE) artifact the caller may read and
answers its artifact type, the model's metadata and its target column, as the official
client then stores them on the experiment it creates. It recognises three kinds of zip:

* an **MLflow model** (``MLmodel`` at the zip's root, or in its only top-level folder):
  ``python/mlflow``. The metadata holds every value of ``MLmodel`` under ``mlflow/<path>``
  (``mlflow/flavors/python_function/loader_module``, ``mlflow/signature/inputs``, ...), and
  ``tool`` (MLflow), ``tool_version`` (the MLflow version that saved it), ``model_type`` (the
  flavor other than python_function, e.g. ``sklearn``). MLflow does not record a target
  column.
* an **H2O-3 MOJO** (``model.ini`` at the root): ``h2o3/mojo``, with ``h2o3/<key>`` for each
  value of its ``[info]`` section (``h2o3/algorithm``, ``h2o3/category``, ...), ``h2o3/columns``,
  ``h2o3/response_column`` and ``h2o3/domains`` (each categorical column's levels, from the
  MOJO's domain files), ``tool`` (H2O-3), ``tool_version``, ``model_type`` (the algorithm); the
  target column is the last column of a supervised model.
* a **DAI MOJO pipeline** (``mojo-pipeline/pipeline.mojo``): ``dai/mojo_pipeline``, with
  ``tool`` (Driverless AI) and, when the zip has its ``example.csv``, ``dai/input_columns``.
  The pipeline itself is a protobuf the sandbox does not read: no target column.

Anything else is INVALID_ARGUMENT saying what the sandbox looked for and what it found; so
is a damaged zip (bad CRC, broken deflate data) and metadata the sandbox will not parse: an
``MLmodel`` or ``model.ini`` over 1 MiB, YAML with aliases or nested too deeply (see
``runtime.runtimes.read_yaml``). Only the header line of ``example.csv`` is read.
"""

from __future__ import annotations

import configparser
import json
import tempfile
import zipfile
from typing import Any

from mlops_nb.sandbox.rpc import Call, handles, invalid_argument
from mlops_nb.sandbox.runtime.runtimes import BAD_ZIP, read_member, read_yaml
from mlops_nb.sandbox.services.artifacts import artifact_chunks, readable_artifact

__all__ = ["ingest_artifact"]

MAX_HEADER_BYTES = 64 * 1024
LOOKED_FOR = ("an MLflow model (an MLmodel file at the zip's root), an H2O-3 MOJO (model.ini at the root) or "
              "a DAI MOJO pipeline (mojo-pipeline/pipeline.mojo)")


def _value(value: Any) -> dict[str, Any]:
    """An IngestMetadataValue in wire JSON."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"int64Value": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    return {"jsonValue": json.dumps(value, default=str)}


def _flatten(prefix: str, data: Any, out: dict[str, Any]) -> None:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            _flatten(f"{prefix}/{key}", value, out)
    elif data is not None:
        out[prefix] = data


def _mlflow(archive: zipfile.ZipFile, mlmodel: str) -> dict[str, Any]:
    try:
        spec = read_yaml(read_member(archive, mlmodel), f"the artifact's {mlmodel}")
    except ValueError as e:
        raise invalid_argument(str(e)) from None
    if not isinstance(spec, dict) or not isinstance(spec.get("flavors"), dict):
        raise invalid_argument(f"the artifact's {mlmodel} names no flavors; it is not an MLflow model")
    values: dict[str, Any] = {}
    _flatten("mlflow", spec, values)
    flavors = [f for f in spec["flavors"] if f != "python_function"]
    values.update(tool="MLflow", tool_version=str(spec.get("mlflow_version", "")),
                  model_type=flavors[0] if flavors else "python_function")
    return {"artifactType": "python/mlflow", "values": values, "target": ""}


def _h2o3(archive: zipfile.ZipFile) -> dict[str, Any]:
    try:
        text = read_member(archive, "model.ini").decode("utf-8", "replace")
    except ValueError as e:
        raise invalid_argument(f"the artifact's {e}") from None
    # [columns] and [domains] list bare lines, not key = value pairs.
    parser = configparser.ConfigParser(allow_no_value=True, delimiters=("=",), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep the keys' case
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise invalid_argument(f"the artifact's model.ini cannot be read ({e})") from None
    info = dict(parser["info"]) if parser.has_section("info") else {}
    columns = list(parser["columns"]) if parser.has_section("columns") else []
    values: dict[str, Any] = {f"h2o3/{k}": v for k, v in info.items() if v is not None}
    if columns:
        values["h2o3/columns"] = columns
    values.update(tool="H2O-3", tool_version=info.get("h2o_version", ""),
                  model_type=info.get("algorithm") or info.get("algo", ""))
    supervised = info.get("supervised", "true").lower() == "true"
    target = columns[-1] if supervised and columns else ""
    if target:
        values["h2o3/response_column"] = target
    domains = _h2o3_domains(archive, parser, columns)
    if domains:
        values["h2o3/domains"] = domains
    return {"artifactType": "h2o3/mojo", "values": values, "target": target}


def _h2o3_domains(archive: zipfile.ZipFile, parser: configparser.ConfigParser, columns: list[str]) -> dict[str, list[str]]:
    """Column name -> its levels, from the ``[domains]`` lines (``index: count file``) and their files.

    Lines or files that are not there as H2O-3 writes them are left out: ingest describes the
    model; whether it loads is the runtime's to say (a damaged MOJO's deployment FAILS, saying why).
    """
    if not parser.has_section("domains"):
        return {}
    names = set(archive.namelist())
    domains = {}
    for line in parser["domains"]:
        index, _, rest = line.partition(":")
        parts = rest.split()
        if not index.strip().isdigit() or int(index) >= len(columns) or len(parts) != 2 \
                or f"domains/{parts[1]}" not in names:
            continue
        levels = archive.read(f"domains/{parts[1]}").decode("utf-8", "replace").splitlines()
        domains[columns[int(index)]] = levels[:int(parts[0])] if parts[0].isdigit() else levels
    return domains


def _dai(archive: zipfile.ZipFile, names: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {"tool": "Driverless AI", "model_type": "mojo_pipeline"}
    example = next((n for n in names if n.endswith("mojo-pipeline/example.csv")), None)
    if example:
        with archive.open(example) as csv:
            header = csv.readline(MAX_HEADER_BYTES).decode("utf-8", "replace").splitlines()[:1]
        if header:
            values["dai/input_columns"] = [c.strip().strip('"') for c in header[0].split(",")]
    return {"artifactType": "dai/mojo_pipeline", "values": values, "target": ""}


def _inspect(archive: zipfile.ZipFile) -> dict[str, Any]:
    names = archive.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    prefix = f"{next(iter(tops))}/" if len(tops) == 1 and all("/" in n for n in names) else ""
    if "MLmodel" in names or (prefix and f"{prefix}MLmodel" in names):
        return _mlflow(archive, "MLmodel" if "MLmodel" in names else f"{prefix}MLmodel")
    if "model.ini" in names:
        return _h2o3(archive)
    if any(n.endswith("mojo-pipeline/pipeline.mojo") for n in names):
        return _dai(archive, names)
    found = ", ".join(sorted(names)[:8]) + (", ..." if len(names) > 8 else "")
    raise invalid_argument(f"the sandbox cannot ingest this artifact: it looked for {LOOKED_FOR}; "
                           f"the zip holds {found or 'nothing'}")


@handles("ingest.model.create_model_ingestion")
def create_model_ingestion(call: Call, request: Any) -> dict[str, Any]:
    return {"ingestion": ingest_artifact(call, request.artifact_id, id_name="artifact_id")}


def ingest_artifact(call: Call, artifact_id: str, *, id_name: str = "artifactId") -> dict[str, Any]:
    """What model the artifact holds, as a ``ModelIngestion`` (wire JSON: artifactId, artifactType,
    modelMetadata, modelParameters); INVALID_ARGUMENT saying why when it holds none the sandbox knows."""
    artifact = readable_artifact(call, artifact_id, id_name=id_name)
    if artifact.get("state") != "AVAILABLE":
        raise invalid_argument(f"artifact {artifact_id!r} has no uploaded bytes "
                               f"(its state is {artifact.get('state', 'EMPTY')}); upload them first")
    with tempfile.TemporaryFile() as file:
        for chunk in artifact_chunks(call.store, artifact["id"]):
            file.write(chunk)
        file.seek(0)
        if not zipfile.is_zipfile(file):
            raise invalid_argument(f"the sandbox cannot ingest artifact {artifact['id']!r}: it is not a zip "
                                   f"archive (it looked for {LOOKED_FOR})")
        try:
            with zipfile.ZipFile(file) as archive:
                found = _inspect(archive)
        except BAD_ZIP as e:
            raise invalid_argument(f"artifact {artifact['id']!r} is a damaged zip archive ({e}); upload it "
                                   "again") from None
    return {
        "artifactId": artifact["id"], "artifactType": found["artifactType"],
        "modelMetadata": {"values": {k: _value(v) for k, v in found["values"].items()}},
        "modelParameters": {"targetColumn": found["target"]},
    }
