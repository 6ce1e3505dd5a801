"""Which runtimes of the catalog the sandbox can run, and how an artifact is unpacked for one.

The seed's runtime table names every runtime a real MLOps offers. The sandbox runs the MLflow
ones (``python-scorer_mlflow_*``) as scorer processes with its own Python and MLflow's own
loader, whatever Python version the runtime's name says (a real MLOps would pull an image with
that version), and the H2O-3 MOJO one (``h2o3_mojo_runtime``) with H2O's genmodel in a JVM
(``mojo_scorer.py``; where Java or genmodel is missing, the scorer's FAILED reason says what to
install). The others need what the sandbox cannot have: Driverless AI's MOJO runtimes and Python
scoring pipelines need Driverless AI's artifacts and license. Deploying onto them is accepted, as
on a real MLOps, and ends FAILED with that reason.

An artifact processor (the seed's third column) turns the uploaded artifact into what the
runtime loads: here every processor unpacks the zip, safely, and checks that the files the
runtime needs are there. Safely means: no member may land outside the folder; the bytes
written are counted as they are written, whatever the zip declares, and unpacking stops with
an error past a bound (``max_bytes``, 2 GiB by default); damaged data (a bad CRC, broken
deflate streams) is an error that says so; metadata files the sandbox reads (``MLmodel``,
``model.ini``) are refused above 1 MiB and parsed by :func:`read_yaml`, which refuses YAML
aliases (a few hundred bytes of them can expand to gigabytes).
"""

from __future__ import annotations

import shutil
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from mlops_nb.api import CATALOGS

__all__ = ["cannot_run", "runnable_runtimes", "unpack", "UnpackError", "MLFLOW_RUNTIME_PREFIX", "runtime_display_name",
           "scorer_program", "H2O3_MOJO_RUNTIME", "read_yaml", "MAX_UNPACKED_BYTES", "MAX_METADATA_BYTES",
           "BAD_ZIP"]

MLFLOW_RUNTIME_PREFIX = "python-scorer_mlflow_"
H2O3_MOJO_RUNTIME = "h2o3_mojo_runtime"
MLFLOW_SCORER = Path(__file__).with_name("scorer.py")
MOJO_SCORER = Path(__file__).with_name("mojo_scorer.py")
MAX_UNPACKED_BYTES = 2 * 1024**3
MAX_METADATA_BYTES = 2**20
METADATA_FILES = ("MLmodel", "model.ini")
# What reading a damaged zip raises: a bad CRC or header (BadZipFile), a broken deflate stream
# (zlib.error), a member cut short (EOFError).
BAD_ZIP = (zipfile.BadZipFile, zlib.error, EOFError)


class UnpackError(Exception):
    """The artifact is not what its processor takes; the message says what was found."""


def runtime_display_name(runtime_name: str) -> str:
    for row in CATALOGS.runtimes:
        if row["runtime_name"] == runtime_name:
            return row["runtime_display_name"]
    return runtime_name


def runnable_runtimes() -> list[str]:
    """The runtime names the sandbox starts scorer processes for."""
    return [r["runtime_name"] for r in CATALOGS.runtimes
            if r["runtime_name"].startswith(MLFLOW_RUNTIME_PREFIX) or r["runtime_name"] == H2O3_MOJO_RUNTIME]


def scorer_program(runtime_name: str) -> Path:
    """The program a runnable runtime's scorer processes run."""
    return MOJO_SCORER if runtime_name == H2O3_MOJO_RUNTIME else MLFLOW_SCORER


def cannot_run(runtime_name: str) -> str | None:
    """Why the sandbox cannot run this runtime, or None when it can."""
    if runtime_name in runnable_runtimes():
        return None
    display = f"{runtime_display_name(runtime_name)} ({runtime_name})"
    model_type = next((r["model_type"] for r in CATALOGS.runtimes if r["runtime_name"] == runtime_name), None)
    if model_type == "dai_python_scoring_pipeline":
        needs = "Driverless AI's Python scoring pipeline runtime and a Driverless AI license"
    elif model_type == "dai_mojo":
        needs = "Driverless AI's MOJO pipeline runtime and a Driverless AI license"
    else:
        needs = "a runtime the sandbox does not know"
    return (f"the sandbox cannot run {display}: it needs {needs}, which it cannot have. The sandbox runs the "
            f"MLflow runtimes and the H2O-3 MOJO runtime ({', '.join(runnable_runtimes())}); deploy this model "
            f"on a real MLOps")


# What each processor's output must contain, and where the runtime finds the model.
_REQUIRED = {
    "unzip_processor": ("MLmodel", "an MLflow model (an MLmodel file at the zip's root)"),
    "h2o3_mojo_extractor": ("model.ini", "an H2O-3 MOJO (model.ini at the zip's root)"),
    "dai_mojo_pipeline_extractor": ("pipeline.mojo", "a DAI MOJO pipeline (mojo-pipeline/pipeline.mojo)"),
    "mlflow_mojo_pipeline_extractor": ("MLmodel", "an MLflow-wrapped MOJO pipeline (an MLmodel file)"),
    "mlflow_scoring_pipeline_extractor": ("MLmodel", "an MLflow-wrapped scoring pipeline (an MLmodel file)"),
}


def read_yaml(data: bytes, what: str) -> Any:
    """``data`` parsed as YAML, within bounds: at most MAX_METADATA_BYTES, no aliases, not nested past
    Python's recursion limit. Raises ValueError saying what is wrong with ``what``."""
    import yaml

    class _NoAliases(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise yaml.YAMLError("YAML aliases (*name) are not accepted in model metadata")
            return super().compose_node(parent, index)

    if len(data) > MAX_METADATA_BYTES:
        raise ValueError(_too_large(what, MAX_METADATA_BYTES))
    try:
        return yaml.load(data, Loader=_NoAliases)  # noqa: S506 - a SafeLoader, refusing aliases
    except yaml.YAMLError as e:
        raise ValueError(f"{what} is not valid YAML ({e})") from None
    except RecursionError:
        raise ValueError(f"{what} is nested too deeply") from None


def _too_large(what: str, limit: int) -> str:
    return f"{what} is larger than {limit} bytes, the most model metadata may take"


def read_member(archive: zipfile.ZipFile, name: str, limit: int = MAX_METADATA_BYTES) -> bytes:
    """One member's bytes, at most ``limit`` of them (ValueError past it, whatever the zip declares)."""
    with archive.open(name) as member:
        data = member.read(limit + 1)
    if len(data) > limit:
        raise ValueError(_too_large(name, limit))
    return data


def unpack(processor: str, chunks: Iterable[bytes], target: Path, max_bytes: int = MAX_UNPACKED_BYTES) -> Path:
    """Unpack an artifact's bytes into ``target`` for ``processor``; return where the model is.

    ``target`` is emptied first. Raises :class:`UnpackError` when the artifact is not a zip, is
    damaged, unpacks to more than ``max_bytes`` or lacks what the processor needs.
    """
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    archive = target / "artifact.zip"
    with open(archive, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
    if processor == "noop_processor":
        return target
    if not zipfile.is_zipfile(archive):
        raise UnpackError(f"the artifact is not a zip archive, which {processor} takes")
    root = target / "model"
    try:
        with zipfile.ZipFile(archive) as z:
            _extract(z, root, max_bytes)
    except BAD_ZIP as e:
        shutil.rmtree(root, ignore_errors=True)
        raise UnpackError(f"the artifact is a damaged zip archive ({e}); upload it again") from None
    except UnpackError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    finally:
        archive.unlink()
    required, what = _REQUIRED.get(processor, ("", ""))
    if not required:
        return root
    found = sorted(root.rglob(required), key=lambda p: len(p.parts))
    if not found:
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())[:8]
        raise UnpackError(f"{processor} takes {what}; the artifact holds {', '.join(names) or 'no files'}")
    if required in METADATA_FILES:
        if found[0].stat().st_size > MAX_METADATA_BYTES:
            raise UnpackError(_too_large(f"the artifact's {required}", MAX_METADATA_BYTES))
        if required == "MLmodel":  # the runtime parses it too: refuse what would blow its memory up
            try:
                read_yaml(found[0].read_bytes(), "the artifact's MLmodel")
            except ValueError as e:
                raise UnpackError(str(e)) from None
    return found[0].parent


def _extract(archive: zipfile.ZipFile, root: Path, max_bytes: int) -> None:
    """Write the members under ``root``, counting the bytes really written (a zip's declared sizes may lie)."""
    members = archive.infolist()
    for member in members:
        path = PurePosixPath(member.filename)
        if path.is_absolute() or ".." in path.parts:
            raise UnpackError(f"the artifact holds {member.filename!r}, outside the archive's folder")
    written = 0
    for member in members:
        destination = root.joinpath(*PurePosixPath(member.filename).parts)
        if member.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as source, open(destination, "wb") as out:
            while chunk := source.read(1 << 20):
                written += len(chunk)
                if written > max_bytes:
                    raise UnpackError(f"the artifact unpacks to more than {max_bytes} bytes, the most the sandbox "
                                      "unpacks (Sandbox(max_unpacked_bytes=...) changes it)")
                out.write(chunk)
