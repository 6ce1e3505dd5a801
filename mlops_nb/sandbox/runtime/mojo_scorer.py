"""A scorer process for the ``h2o3_mojo_runtime``: one H2O-3 MOJO behind H2O MLOps's scoring API.

The supervisor starts this file by path, like ``scorer.py``, whose process protocol (events on
stdout, the order on stdin, exit when stdin closes) and HTTP routes it shares: only the model
differs. The MOJO is loaded and scored by H2O's own Java library, genmodel
(``hex.genmodel.MojoModel`` behind an ``EasyPredictModelWrapper``), in a JVM that JPype starts
inside this process once, while the deployment is LAUNCHING; requests then cross from Python to
Java in-process, row by row, as genmodel's API takes them.

What it needs, each named in the FAILED reason when missing: Java (``java`` on PATH or
``JAVA_HOME``; Debian: ``openjdk-17-jre-headless``), JPype1, and genmodel: the jar
``MLOPS_NB_H2O_GENMODEL_JAR`` names, else the ``h2o`` package's ``backend/bin/h2o.jar``, from
which ``www/3/h2o-genmodel.jar`` is extracted once into a cache. ``pip install 'mlops_nb[h2o]'``
brings the last two.

Scoring follows genmodel's own command-line scorer (``hex.genmodel.tools.PredictCsv``, which
``h2o.mojo_predict_pandas`` runs): an empty value, ``NA``, ``N/A`` or ``-`` is missing, a
categorical level the model never saw is missing, a value that is not a number in a numeric
column is refused (400, naming the row and field); output fields are genmodel's
``getOutputNames()``: ``predict`` (the label, or the value of a regression), then one
probability per class, named as H2O-3 names its prediction frame's columns.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
import zipfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

if __package__:
    from mlops_nb.sandbox.runtime import scorer
else:  # started by path, as the supervisor does: scorer.py sits beside this file
    import scorer  # type: ignore[no-redef]

GENMODEL_JAR_VARIABLE = "MLOPS_NB_H2O_GENMODEL_JAR"
INSTALL = "pip install 'mlops_nb[h2o]' (JPype1 and h2o)"
JVM_OPTIONS = ("-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true")
MISSING = frozenset({"", "NA", "N/A", "-"})  # what PredictCsv skips
CATEGORIES = {"Binomial": "BINOMIAL", "Multinomial": "CLASSIFICATION", "Ordinal": "CLASSIFICATION",
              "Regression": "REGRESSION"}


def genmodel_jar(cache: Path | None = None) -> Path:
    """Where genmodel's jar is: the environment's choice, else extracted from the ``h2o`` package.

    Raises :class:`scorer.MissingRuntime` saying what to install.
    """
    named = os.environ.get(GENMODEL_JAR_VARIABLE)
    if named:
        if not Path(named).is_file():
            raise scorer.MissingRuntime(f"the H2O-3 MOJO scorer needs H2O's genmodel jar: {GENMODEL_JAR_VARIABLE} "
                                        f"names {named}, which is not a file")
        return Path(named)
    spec = find_spec("h2o")
    h2o_jar = (Path(next(iter(spec.submodule_search_locations or ())), "backend", "bin", "h2o.jar")
               if spec is not None else None)
    if h2o_jar is None or not h2o_jar.is_file():
        raise scorer.MissingRuntime(
            f"the H2O-3 MOJO scorer needs H2O's genmodel library, which was not found: install the h2o package "
            f"into the sandbox's Python ({sys.executable}): {INSTALL}; or set {GENMODEL_JAR_VARIABLE} to an "
            f"h2o-genmodel.jar")
    stat = h2o_jar.stat()
    key = hashlib.sha256(f"{h2o_jar}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cache = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlops_nb"
    target = cache / f"h2o-genmodel-{key}.jar"
    if not target.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.part")  # scorers starting together each write their own
        with zipfile.ZipFile(h2o_jar) as archive, archive.open("www/3/h2o-genmodel.jar") as inside, \
                open(partial, "wb") as out:
            while chunk := inside.read(1 << 20):
                out.write(chunk)
        partial.replace(target)
    return target


def start_jvm(jar: Path) -> None:
    """Start the JVM with genmodel on its class path (once per process)."""
    try:
        import jpype
    except ImportError:
        raise scorer.MissingRuntime(f"the H2O-3 MOJO scorer needs JPype1 (it runs genmodel in the scorer), which "
                                    f"is not installed in the sandbox's Python ({sys.executable}): {INSTALL}") from None
    if jpype.isJVMStarted():
        return
    try:
        jvm = jpype.getDefaultJVMPath()
    except jpype.JVMNotFoundException:
        raise scorer.MissingRuntime("the H2O-3 MOJO scorer needs Java, which was not found (no java on PATH, no "
                                    "JAVA_HOME): install a Java runtime, e.g. on Debian or Ubuntu "
                                    "apt-get install openjdk-17-jre-headless") from None
    jpype.startJVM(jvm, *JVM_OPTIONS, classpath=[str(jar)], convertStrings=False)


def _warm_up() -> None:
    start_jvm(genmodel_jar())
    import jpype.imports  # noqa: F401 - makes Java packages importable
    from hex.genmodel import MojoModel  # noqa: F401 - loads genmodel's classes before any model comes


def _java_error(error: Exception) -> str:
    """A Java exception as its class and message (JPype's str() adds a Java stack trace)."""
    get_class = getattr(error, "getClass", None)
    if get_class is None:
        return f"{type(error).__name__}: {error}"
    message = error.getMessage()  # type: ignore[attr-defined]
    return f"{get_class().getName()}{f': {message}' if message is not None else ''}"


class MojoModel(scorer.Model):
    """An H2O-3 MOJO loaded by genmodel, with the scoring API of :class:`scorer.Model`."""

    def __init__(self, model_dir: str, experiment_id: str, name: str) -> None:
        import jpype
        from hex.genmodel import MojoModel as GenModelMojo
        from hex.genmodel.easy import EasyPredictModelWrapper, RowData

        self.experiment_id = experiment_id
        self.name = name
        self.example = None
        self.lock = threading.Lock()
        self._row = RowData
        try:
            model = GenModelMojo.load(model_dir)
            config = (EasyPredictModelWrapper.Config().setModel(model)
                      .setConvertUnknownCategoricalLevelsToNa(True))
            self._wrapper = EasyPredictModelWrapper(config)
        except jpype.JException as e:
            raise RuntimeError(f"genmodel could not load the H2O-3 MOJO (a MOJO whole as H2O-3's save_mojo wrote "
                               f"it loads): {_java_error(e)}") from None
        self.category = str(model.getModelCategory().toString())
        if self.category not in CATEGORIES:
            raise RuntimeError(f"the H2O-3 MOJO is a {self.category} model; the sandbox's MOJO scorer serves "
                               f"{', '.join(CATEGORIES)} models")
        self.algorithm = str(model.getClass().getSimpleName())
        names = [str(n) for n in model.getNames()]
        self.domains = {names[i]: [str(level) for level in domain]
                        for i in range(model.nfeatures()) if (domain := model.getDomainValues(i)) is not None}
        self.inputs = [(n, "Str" if n in self.domains else "Float64") for n in names[:model.nfeatures()]]
        self.response = str(model.getResponseName())
        outputs = [str(n) for n in model.getOutputNames()]
        self.outputs = [(outputs[0], "Float64" if self.category == "Regression" else "Str"),
                        *((n, "Float64") for n in outputs[1:])]
        self._predict_row = {"Binomial": self._wrapper.predictBinomial,
                             "Multinomial": self._wrapper.predictMultinomial,
                             "Ordinal": self._wrapper.predictOrdinal,
                             "Regression": self._wrapper.predictRegression}[self.category]
        self._keys = [jpype.JString(n) for n, _ in self.inputs]
        self._labels = (None if self.category == "Regression"
                        else [str(level) for level in self._wrapper.getResponseDomainValues()])
        # H2O's sample request (typed placeholders; "text" is a level no model knows, so missing),
        # scored once: it proves the model answers before it is called ready.
        self.sample = scorer.placeholder_request(self.inputs)
        self.score(self.sample)

    def scoring_type(self) -> str:
        return CATEGORIES[self.category]

    def schema(self) -> dict[str, Any]:
        schema = super().schema()
        schema["description"] = f"H2O-3 MOJO {self.name} ({self.algorithm}, {self.category}, response {self.response})"
        return schema

    def predict_rows(self, fields: list[str], rows: list[list[Any]]) -> tuple[list[list[str]], dict[str, float]]:
        started = time.perf_counter()
        position = {f: i for i, f in enumerate(fields)}
        # Fields the model does not use are ignored; those it uses and the request lacks are missing.
        used = [(key, position[name]) for key, (name, _) in zip(self._keys, self.inputs, strict=True)
                if name in position]
        parsed = time.perf_counter()
        # Each crossing into Java costs microseconds, so a row makes few: one map of its values, one
        # prediction; the label comes back as its index into the response's levels, the
        # probabilities as one buffer.
        scored = []
        text, predict, labels, new_row = scorer._text, self._predict_row, self._labels, self._row
        with self.lock:
            for n, row in enumerate(rows):
                data = new_row()
                data.putAll({key: value if isinstance(value, str) else text(value) for key, i in used
                             if (value := row[i]) is not None and (str(value).strip() not in MISSING)})
                try:
                    prediction = predict(data)
                except Exception as e:  # genmodel's PredictException: a value it cannot take
                    raise scorer.BadRequest(f"row {n}: {_java_error(e)}") from None
                if labels is None:
                    scored.append([text(float(prediction.value))])
                else:
                    scored.append([labels[prediction.labelIndex],
                                   *map(text, memoryview(prediction.classProbabilities).tolist())])
        return scored, {"parse": parsed - started, "predict": time.perf_counter() - parsed}


def _load(order: dict[str, Any]) -> MojoModel:
    import jpype

    scorer.log(f"loading the H2O-3 MOJO with genmodel on Java "
               f"{jpype.java.lang.System.getProperty('java.version')}")
    return MojoModel(order["model_dir"], order.get("experiment_id", ""), order.get("name", ""))


def main() -> None:
    scorer.serve(_warm_up, _load)


if __name__ == "__main__":
    main()
