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
runtime loads: here every processor unpacks the zip into the revision's directory, safely (no
member may land outside it), and checks that the files the runtime needs are there.
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from mlops_nb.api import CATALOGS

__all__ = ["cannot_run", "runnable_runtimes", "unpack", "UnpackError", "MLFLOW_RUNTIME_PREFIX", "runtime_display_name",
           "scorer_program", "H2O3_MOJO_RUNTIME"]

MLFLOW_RUNTIME_PREFIX = "python-scorer_mlflow_"
H2O3_MOJO_RUNTIME = "h2o3_mojo_runtime"
MLFLOW_SCORER = Path(__file__).with_name("scorer.py")
MOJO_SCORER = Path(__file__).with_name("mojo_scorer.py")
MAX_UNPACKED_BYTES = 8 * 1024**3  # a zip that claims more is refused, not filled in


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


def unpack(processor: str, chunks: Iterable[bytes], target: Path) -> Path:
    """Unpack an artifact's bytes into ``target`` for ``processor``; return where the model is.

    ``target`` is emptied first. Raises :class:`UnpackError` when the artifact is not a zip or
    lacks what the processor needs.
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
    with zipfile.ZipFile(archive) as z:
        members = z.infolist()
        if sum(m.file_size for m in members) > MAX_UNPACKED_BYTES:
            raise UnpackError(f"the artifact unpacks to more than {MAX_UNPACKED_BYTES} bytes")
        for member in members:
            path = PurePosixPath(member.filename)
            if path.is_absolute() or ".." in path.parts:
                raise UnpackError(f"the artifact holds {member.filename!r}, outside the archive's folder")
        z.extractall(root)
    archive.unlink()
    required, what = _REQUIRED.get(processor, ("", ""))
    if not required:
        return root
    found = sorted(root.rglob(required), key=lambda p: len(p.parts))
    if not found:
        names = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())[:8]
        raise UnpackError(f"{processor} takes {what}; the artifact holds {', '.join(names) or 'no files'}")
    return found[0].parent
