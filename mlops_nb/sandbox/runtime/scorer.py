"""A scorer process: one deployed MLflow model behind H2O MLOps's scoring API.

The sandbox's supervisor starts this file with the sandbox's own Python (by path, so that
it imports nothing of ``mlops_nb``: a scorer is a separate program, as a runtime image is on
a real MLOps), with the sandbox's process id as its one argument: once its parent is another
process (the sandbox has gone, however), it exits within 0.2 s, even while still importing.
It talks to the supervisor over its standard streams:

* stdout carries events, one JSON object per line: ``{"event": "warm"}`` once MLflow is
  imported, then ``{"event": "listening", "port": N}`` once the model is loaded and served,
  or ``{"event": "failed", "reason": ..., "kind": ...}``. Anything else the process or the
  model prints goes to stderr, which the sandbox keeps as the deployment's log.
* stdin carries one JSON line, the model to load (``model_dir``, ``experiment_id``, ``env``)
  and how to serve it (``secret``, ``deadline_seconds``), and then stays open: when it closes,
  the sandbox has gone, and the scorer exits. That is how no scorer outlives its sandbox, even
  one killed with SIGKILL.

Only the sandbox may call a scorer: every request must carry the order's ``secret`` in the
``X-Scorer-Secret`` header (compared in constant time; 401 otherwise), so a local process
that finds the port gets nowhere. ``GET /readyz`` answers 503 while a prediction has run
longer than ``deadline_seconds``: a stuck model is then seen as unhealthy and replaced.

Loading a model runs its code (MLflow's loader unpickles it), as a runtime does on a real
MLOps: deploy only models you trust.

Routes (H2O MLOps scoring API): ``GET /model/id`` (text), ``/model/schema``,
``/model/sample_request``, ``/model/capabilities``, ``POST /model/score``,
``POST /model/contribution`` (refused: no Shapley values here), ``GET /readyz``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# MLflow's own scoring server turns its telemetry off too; here there may be no network.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

MAX_BODY = 64 * 1024 * 1024
SECRET_HEADER = "X-Scorer-Secret"
MISSING = {"", "na", "nan", "null", "none"}
# MLflow column types -> the scoring API's data types.
DATA_TYPES = {"double": "Float64", "float": "Float32", "long": "Int64", "integer": "Int32", "boolean": "Bool",
              "string": "Str", "binary": "Bytes", "datetime": "Time64"}
NUMPY_TYPES = {"float64": "Float64", "float32": "Float32", "int64": "Int64", "int32": "Int32", "bool": "Bool",
               "object": "Str", "str": "Str", "datetime64[ns]": "Time64"}


class BadRequest(Exception):
    """The request cannot be scored; the message says what to change."""


class MissingRuntime(ImportError):
    """Something the runtime needs is not installed; the message says what to install."""


def emit(stream: Any, event: str, **fields: Any) -> None:
    stream.write(json.dumps({"event": event, **fields}) + "\n")
    stream.flush()


def log(text: str) -> None:
    sys.stderr.write(f"{text}\n")
    sys.stderr.flush()


# -- the model ---------------------------------------------------------------------------


class Model:
    """A loaded MLflow model with its scoring schema."""

    # Monotonic start of the prediction running now (0: none); a class default, so that a runtime's
    # subclass (the MOJO model) that sets up its own fields has it too.
    predicting_since = 0.0

    def __init__(self, model_dir: str, experiment_id: str, name: str) -> None:
        import mlflow.pyfunc

        self.experiment_id = experiment_id
        self.name = name
        self.pyfunc = mlflow.pyfunc.load_model(model_dir)
        self.lock = threading.Lock()  # a pyfunc model is not promised to be thread-safe
        signature = self.pyfunc.metadata.signature
        self.inputs = self._columns(signature.inputs if signature else None)
        example = self.pyfunc.input_example
        self.example = example if _is_frame(example) else None
        self.outputs = self._columns(signature.outputs if signature else None)
        if self.example is not None:
            # One trial prediction: it proves the model answers before the sandbox calls it
            # ready, and names and types the outputs when the signature does not.
            trial = self._output_frame(self._predict(self.example.head(1)))
            if not self.outputs or len(self.outputs) != len(trial.columns):
                self.outputs = [(str(c), NUMPY_TYPES.get(str(trial[c].dtype), "Str")) for c in trial.columns]
        if not self.outputs:
            self.outputs = [("prediction", "Str")]
        self.sample = self._checked_sample_request()

    @staticmethod
    def _columns(schema: Any) -> list[tuple[str, str]]:
        """[(name, scoring data type)] of a column-based schema; tensors become one 'prediction' column."""
        if schema is None:
            return []
        columns = []
        for i, item in enumerate(schema.inputs):
            kind = type(item).__name__
            if kind == "TensorSpec":
                name = item.name or ("prediction" if len(schema.inputs) == 1 else f"prediction.{i}")
                columns.append((name, NUMPY_TYPES.get(str(item.type), "Str")))
            else:
                columns.append((item.name or f"c{i}", DATA_TYPES.get(str(item.type).split(".")[-1], "Str")))
        return columns

    def scoring_type(self) -> str:
        try:
            raw = self.pyfunc.get_raw_model()
        except Exception:  # not every flavor exposes its raw model
            raw = None
        return scoring_type_of(raw) or ("REGRESSION" if {t for _, t in self.outputs} <= {"Float64", "Float32"}
                                        else "CLASSIFICATION")

    def schema(self) -> dict[str, Any]:
        return {
            "id": self.experiment_id, "name": self.name, "description": f"MLflow model {self.name}",
            "properties": {"scoringType": self.scoring_type(),
                           "scoringResponseLabels": [n for n, _ in self.outputs]},
            "schema": {"inputFields": [{"name": n, "dataType": t} for n, t in self.inputs],
                       "outputFields": [{"name": n, "dataType": t} for n, t in self.outputs]},
        }

    def sample_request(self) -> dict[str, Any]:
        return self.sample

    def _checked_sample_request(self) -> dict[str, Any]:
        """H2O's sample request (typed placeholders), or the input example's first row if the model
        refuses the placeholders (a category it has never seen, say): one that scores as it is."""
        columns = self.inputs or ([(str(c), NUMPY_TYPES.get(str(t), "Str")) for c, t in self.example.dtypes.items()]
                                  if self.example is not None else [])
        request = placeholder_request(columns)
        try:
            self.score(request)
            return request
        except BadRequest as refused:
            fields = request["fields"]
            if self.example is None or not all(f in self.example.columns for f in fields):
                log(f"the sample request does not score ({refused}) and the model has no input example to take "
                    "one from")
                return request
            log(f"the model refuses placeholder values ({refused}); the sample request is the input example's "
                "first row")
            return {"fields": fields, "rows": [[_text(v) for v in self.example[fields].iloc[0].tolist()]]}

    def _predict(self, frame: Any) -> Any:
        with self.lock:
            self.predicting_since = time.monotonic()
            try:
                return self.pyfunc.predict(frame)
            finally:
                self.predicting_since = 0.0

    def stuck_for(self, deadline: float) -> float:
        """How long the running prediction has overrun ``deadline`` seconds (0 when it has not)."""
        since = self.predicting_since
        return max(0.0, time.monotonic() - since - deadline) if since else 0.0

    @staticmethod
    def _output_frame(prediction: Any) -> Any:
        import numpy
        import pandas

        if isinstance(prediction, pandas.DataFrame):
            return prediction
        if isinstance(prediction, pandas.Series):
            return prediction.to_frame(prediction.name if prediction.name is not None else "prediction")
        array = numpy.asarray(prediction)
        if array.ndim == 1:
            return pandas.DataFrame({"prediction": array})
        return pandas.DataFrame(array.reshape(len(array), -1),
                                columns=[f"prediction.{i}" for i in range(array.reshape(len(array), -1).shape[1])])

    def frame(self, fields: list[str], rows: list[list[Any]]) -> Any:
        """The model's input frame from a request's fields and rows, each column typed as the schema says."""
        import pandas

        position = {f: i for i, f in enumerate(fields)}
        wanted = self.inputs or [(f, "") for f in fields]
        missing = [n for n, _ in wanted if n not in position]
        if missing:
            raise BadRequest(f"field {missing[0]!r} is missing from 'fields'; the model needs: "
                             f"{', '.join(n for n, _ in wanted)}")
        if all(t in ("Float64", "Float32") for _, t in wanted):
            matrix = _float_matrix(rows, len(fields))
            if matrix is not None:
                return _numeric_frame(matrix, [(position[n], n, t) for n, t in wanted])
        _check_rows(rows, len(fields))
        by_field = list(zip(*rows, strict=True)) if rows else [() for _ in fields]
        columns = {name: _column(name, data_type, list(by_field[position[name]])) for name, data_type in wanted}
        return pandas.DataFrame(columns, index=range(len(rows)))

    def score(self, request: dict[str, Any]) -> dict[str, Any]:
        fields, rows = _fields_and_rows(request)
        if request.get("requestPredictionIntervals"):
            raise BadRequest("requestPredictionIntervals: this model does not give prediction intervals "
                             "(capabilities: SCORE)")
        shapley = request.get("requestShapleyValueType") or "NONE"
        if shapley not in ("NONE", "ORIGINAL", "TRANSFORMED"):
            raise BadRequest(f"requestShapleyValueType must be ORIGINAL, TRANSFORMED or NONE, not {shapley!r}")
        if shapley != "NONE":
            raise BadRequest("requestShapleyValueType: this runtime does not compute Shapley values "
                             "(capabilities: SCORE)")
        include = request.get("includeFieldsInOutput") or []
        if not isinstance(include, list) or not all(isinstance(f, str) for f in include):
            raise BadRequest("includeFieldsInOutput must be a list of field names")
        unknown = [f for f in include if f not in fields]
        if unknown:
            raise BadRequest(f"includeFieldsInOutput names {unknown[0]!r}, which is not among the request's fields")
        id_field = request.get("idField") or ""
        if not isinstance(id_field, str):
            raise BadRequest("idField must be a field name")
        scored, timing = self.predict_rows(fields, rows)
        copied = [[row[fields.index(f)] for f in include] for row in rows] if include else [[] for _ in rows]
        if id_field:
            ids = ([row[fields.index(id_field)] for row in rows] if id_field in fields
                   else [str(uuid.uuid4()) for _ in rows])
            copied = [c + [i] for c, i in zip(copied, ids, strict=True)]
        out_fields = [*include, *([id_field] if id_field else []), *(n for n, _ in self.outputs)]
        body: dict[str, Any] = {"id": self.experiment_id,
                                "score": [c + [str(v) for v in s] for c, s in zip(copied, scored, strict=True)]}
        if not request.get("noFieldNamesInOutput"):
            body["fields"] = out_fields
        body["_timing"] = timing
        return body

    def predict_rows(self, fields: list[str], rows: list[list[Any]]) -> tuple[list[list[str]], dict[str, float]]:
        """The model's outputs for the request's rows, as text in the order of ``outputs``, and the
        seconds spent parsing and predicting. Another runtime's model overrides this alone."""
        started = time.perf_counter()
        frame = self.frame(fields, rows)
        parsed = time.perf_counter()
        if rows:
            try:
                prediction = self._predict(frame)
            except Exception as e:  # the model's own complaint, for the user to read
                raise BadRequest(f"the model could not score these rows: {type(e).__name__}: {e}") from None
            output = self._output_frame(prediction)
            if len(output) != len(rows):
                raise RuntimeError(f"the model returned {len(output)} predictions for {len(rows)} rows")
            scored = list(map(list, zip(*(_column_text(output.iloc[:, i]) for i in range(output.shape[1])),
                                        strict=True)))
        else:
            scored = []
        return scored, {"parse": parsed - started, "predict": time.perf_counter() - parsed}


# What H2O's own runtimes put in a sample request for each data type (their SampleRequestBuilder):
# values that pass the request's checks, meant to be replaced by real ones.
PLACEHOLDERS = {"Bool": "true", "Int32": "0", "Int64": "0", "Float32": "0", "Float64": "0", "Str": "text",
                "Time64": "2018-01-01"}


def placeholder_request(columns: list[tuple[str, str]]) -> dict[str, Any]:
    """One row of typed placeholders for [(field, data type)], as H2O's runtimes build it."""
    return {"fields": [name for name, _ in columns], "rows": [[PLACEHOLDERS.get(t, "") for _, t in columns]]}


def scoring_type_of(estimator: Any) -> str | None:
    """BINOMIAL, CLASSIFICATION or REGRESSION from a fitted estimator (a Pipeline by its last step), or None.

    Recent scikit-learn pipelines have no ``_estimator_type``: the fitted classes say what a
    classifier is, and the last step says what a pipeline is.
    """
    final = getattr(estimator, "_final_estimator", estimator)
    classes = getattr(final, "classes_", None)
    if classes is not None:
        return "BINOMIAL" if len(classes) == 2 else "CLASSIFICATION"
    kind = getattr(final, "_estimator_type", None)
    if kind is None and hasattr(final, "__sklearn_tags__"):
        with contextlib.suppress(Exception):
            kind = final.__sklearn_tags__().estimator_type
    return {"classifier": "CLASSIFICATION", "regressor": "REGRESSION"}.get(kind or "")


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # float() first: a NumPy float is a float whose repr is "np.float64(...)"
        return "NaN" if math.isnan(value) else repr(float(value))
    if hasattr(value, "item"):  # numpy scalars
        return _text(value.item())
    return str(value)


def _fields_and_rows(request: Any) -> tuple[list[str], list[list[Any]]]:
    if not isinstance(request, dict):
        raise BadRequest("the request body must be a JSON object with 'fields' and 'rows'")
    fields, rows = request.get("fields"), request.get("rows")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise BadRequest("'fields' must be a list of field names")
    if len(set(fields)) != len(fields):
        duplicate = next(f for f in fields if fields.count(f) > 1)
        raise BadRequest(f"field {duplicate!r} appears twice in 'fields'")
    if not isinstance(rows, list):
        raise BadRequest("'rows' must be a list of rows, each a list of values (as strings)")
    return fields, rows


def _check_rows(rows: list[Any], width: int) -> None:
    """Say which row is not a list of ``width`` plain values (the fast path takes only good rows)."""
    for n, row in enumerate(rows):
        if not isinstance(row, list):
            raise BadRequest(f"row {n} is not a list of values")
        if len(row) != width:
            raise BadRequest(f"row {n} has {len(row)} values but 'fields' names {width}")
        for value in row:
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise BadRequest(f"row {n} holds a {type(value).__name__}; values are strings")


# What a number written as text may hold; any other byte sends a request down the careful path.
_NUMBER_BYTES = b"0123456789.eE+-, \t\n\rnNaAiIfFtTyY"


def _float_matrix(rows: list[Any], width: int) -> Any:
    """Every value of ``rows`` as one float64 matrix, parsed in one numpy call; ``None`` unless each
    row is a list of ``width`` strings that are plainly numbers (the careful path then takes them).

    Parsing is exact (numpy reads text with Python's correctly rounded ``strtod``), so the
    matrix holds the very values ``float(text)`` gives. Values are joined with commas: a comma
    inside a value shows as one comma too many, a value that is not a number stops numpy early.
    """
    import numpy

    count = len(rows) * width
    if not count or not all(type(row) is list and len(row) == width for row in rows):
        return None
    try:
        joined = ",".join(map(",".join, rows))
    except TypeError:  # a value that is not a string
        return None
    if joined.count(",") != count - 1 or not joined.isascii() or joined.encode().translate(None, _NUMBER_BYTES):
        return None
    try:
        values = numpy.fromstring(joined, dtype="float64", sep=",")
    except ValueError:
        return None
    return values.reshape(len(rows), width) if values.size == count else None


def _numeric_frame(matrix: Any, wanted: list[tuple[int, str, str]]) -> Any:
    """The input frame from the parsed matrix: (position in the request, name, data type) per column."""
    import numpy
    import pandas

    positions = [p for p, _, _ in wanted]
    # Column after column in memory, as a frame built from one array per column is: the model
    # sees the very layout it saw before, so its arithmetic (and last digits) cannot change.
    by_column = numpy.ascontiguousarray(matrix.T if positions == list(range(matrix.shape[1]))
                                        else matrix[:, positions].T)
    frame = pandas.DataFrame(by_column.T, columns=[n for _, n, _ in wanted], copy=False)
    narrow = [n for _, n, t in wanted if t == "Float32"]
    return frame.astype(dict.fromkeys(narrow, "float32")) if narrow else frame


def _column_text(column: Any) -> list[str]:
    """An output column as the scoring API's strings, as ``_text`` writes each value, in a few calls."""
    kind = column.dtype.kind
    values = column.tolist()
    if kind == "f":
        text = list(map(repr, values))
        if column.isna().any():
            text = ["NaN" if v != v else t for v, t in zip(values, text, strict=True)]
        return text
    if kind in "iu":
        return list(map(str, values))
    return list(map(_text, values))


def _column(name: str, data_type: str, values: list[Any]) -> Any:
    """One input column converted from the request's strings to the schema's type."""
    import numpy
    import pandas

    if data_type in ("Float64", "Float32"):
        # The common case, in one numpy call: every value a number (or NaN). Anything else takes
        # the careful path below, which says which row is wrong.
        try:
            return pandas.Series(numpy.asarray(values, dtype=data_type.lower()))
        except (ValueError, TypeError):
            pass
    raw = pandas.Series(values, dtype=object)
    if data_type in ("", "Str", "Bytes"):
        if data_type == "":
            numbers = pandas.to_numeric(raw, errors="coerce")
            return numbers if not numbers.isna().any() else raw.astype(str)
        return raw.map(lambda v: "" if v is None else str(v))
    text = raw.map(lambda v: "" if v is None else str(v).strip())
    missing = text.str.lower().isin(MISSING)
    if data_type == "Bool":
        lowered = text.str.lower()
        known = lowered.isin(["true", "false", "1", "0"])
        _refuse(name, data_type, text, ~known)
        return lowered.isin(["true", "1"])
    if data_type == "Time64":
        parsed = pandas.to_datetime(text.where(~missing), errors="coerce", utc=True, format="ISO8601")
        _refuse(name, data_type, text, parsed.isna() & ~missing)
        return parsed
    numbers = pandas.to_numeric(text.where(~missing), errors="coerce")
    _refuse(name, data_type, text, numbers.isna() & ~missing)
    if data_type in ("Int64", "Int32"):
        if missing.any():
            row = int(numpy.flatnonzero(missing.to_numpy())[0])
            raise BadRequest(f"row {row}, field {name!r}: a value is required (the model takes {data_type})")
        fractional = numbers != numpy.floor(numbers)
        _refuse(name, data_type, text, fractional)
        return numbers.astype("int64" if data_type == "Int64" else "int32")
    return numbers.astype("float64" if data_type == "Float64" else "float32")


def _refuse(name: str, data_type: str, text: Any, bad: Any) -> None:
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise BadRequest(f"row {row}, field {name!r}: {text.iloc[row]!r} is not a valid {data_type}")


# -- HTTP ------------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    model: Model  # set on the class before serving, with the two below
    secret: str
    deadline: float
    server_version = "mlops-nb-scorer"
    # Headers and body leave in one write, without Nagle's algorithm: written apart, the body
    # would wait for the peer's delayed acknowledgement of the headers (40 ms on Linux).
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the sandbox's gateway records every request; no access log here

    def _send(self, status: int, body: Any, *, text: bool = False, timing: str = "") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8" if text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        if timing:
            self.send_header("Server-Timing", timing)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"message": message})

    def _allowed(self) -> bool:
        """Whether the caller holds this scorer's secret; answers 401 when not."""
        given = self.headers.get(SECRET_HEADER, "")
        if hmac.compare_digest(given.encode(), self.secret.encode()):
            return True
        self._error(401, "only the sandbox that started this scorer may call it; score through the "
                         "deployment's URL")
        self.close_connection = True
        return False

    def _readiness(self) -> None:
        overrun = self.model.stuck_for(self.deadline)
        if overrun:
            self._send(503, f"stuck: a prediction has run {self.deadline + overrun:.0f} s, longer than the "
                            f"{self.deadline:.0f} s deadline", text=True)
        else:
            self._send(200, "ready", text=True)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._allowed():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        model = self.model
        routes = {
            "/readyz": self._readiness,
            "/model/id": lambda: self._send(200, model.experiment_id, text=True),
            "/model/schema": lambda: self._send(200, model.schema()),
            "/model/sample_request": lambda: self._send(200, model.sample_request()),
            "/model/capabilities": lambda: self._send(200, ["SCORE"]),
        }
        if path in routes:
            routes[path]()
        elif path in ("/model/score", "/model/contribution"):
            self._error(405, f"{path} takes POST")
        else:
            self._error(404, f"no route {path}; the scoring API serves /model/score, /model/schema, "
                             "/model/sample_request, /model/capabilities, /model/id and /readyz")

    def do_POST(self) -> None:  # noqa: N802
        if not self._allowed():
            return
        path = self.path.split("?", 1)[0].rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._error(413, f"the request is larger than {MAX_BODY} bytes; send fewer rows per request")
            self.close_connection = True
            return
        raw = self.rfile.read(length)
        if path == "/model/contribution":
            self._error(400, "this runtime does not compute Shapley contributions (capabilities: SCORE)")
            return
        if path != "/model/score":
            self._error(404 if path not in ("/model/schema", "/model/id", "/model/sample_request",
                                            "/model/capabilities", "/readyz") else 405,
                        f"POST {path}: only /model/score and /model/contribution take POST")
            return
        started = time.perf_counter()
        try:
            request = json.loads(raw or b"{}")
        except ValueError as e:
            self._error(400, f"the request body is not valid JSON ({e})")
            return
        except RecursionError:
            self._error(400, "the request body is nested too deeply; send 'fields' and 'rows' (a list of lists "
                             "of values)")
            return
        decoded = time.perf_counter()
        try:
            body = self.model.score(request)
        except BadRequest as e:
            self._error(400, str(e))
            return
        except Exception as e:  # a bug or a broken model must not take the scorer down
            log(traceback.format_exc().rstrip())
            self._error(500, f"the scorer failed: {type(e).__name__}: {e}")
            return
        timing = body.pop("_timing")
        encoded = time.perf_counter()
        text = json.dumps(body)
        done = time.perf_counter()
        self._send(200, text, timing=(f"parse;dur={(decoded - started + timing['parse']) * 1000:.3f}, "
                                      f"predict;dur={timing['predict'] * 1000:.3f}, "
                                      f"encode;dur={(done - encoded) * 1000:.3f}, "
                                      f"total;dur={(done - started) * 1000:.3f}"))


# -- the process -----------------------------------------------------------------------------


def _failure(error: BaseException) -> tuple[str, str]:
    """(kind, reason) for a model that could not be loaded."""
    if isinstance(error, MissingRuntime):
        return "missing_dependency", str(error)
    if isinstance(error, ModuleNotFoundError):
        return "missing_dependency", f"missing dependency: {error} (install it into the Python the sandbox runs with)"
    return "load_error", f"the model could not be loaded: {type(error).__name__}: {error}"


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the sandbox's thread that started it ends (the sandbox
    starts scorers from one thread that lives as long as it does): no Python needs to run for that,
    so a scorer busy in C code (importing, predicting) goes too."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def _exit_when_orphaned(parent: int) -> None:
    """Exit soon after the sandbox goes away, however it goes: this process is then re-parented. Started
    first thing (and checked at once: the sandbox may have gone before this process asked to die with
    it), so that a spare still importing MLflow does not outlive a killed sandbox either."""

    def until_orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(0)

    threading.Thread(target=until_orphaned, daemon=True).start()


def _exit_at_eof(control: Any) -> None:
    """Exit when the sandbox's end of stdin closes (it stopped, or stopped this scorer)."""

    def until_eof() -> None:
        for _ in control:
            pass
        os._exit(0)

    threading.Thread(target=until_eof, daemon=True).start()


def _warm_up() -> None:
    """Import what loading a scikit-learn MLflow model needs, before any model comes.

    The supervisor keeps a warm spare scorer, so that a new deployment waits only for its
    model to load. Each step here costs seconds in a fresh process.
    """
    import mlflow.pyfunc  # noqa: F401
    import pandas  # noqa: F401

    for optional in ("sklearn", "skops.io"):  # the usual flavor and its default file format
        with contextlib.suppress(ImportError):
            __import__(optional)
    # MLflow compares the model's requirements with the installed packages on every load;
    # the map of installed packages it builds for that is cached, so build it now.
    from mlflow.utils import requirements_utils

    getattr(requirements_utils, "_init_packages_to_modules_map", lambda: None)()


def _load_mlflow(order: dict[str, Any]) -> Model:
    log(f"loading the MLflow model with Python {sys.version.split()[0]}")
    return Model(order["model_dir"], order.get("experiment_id", ""), order.get("name", ""))


def main() -> None:
    serve(_warm_up, _load_mlflow)


def serve(warm_up: Callable[[], None], load: Callable[[dict[str, Any]], Model]) -> None:
    """Run a scorer process: ``warm_up`` before any model comes, then ``load`` the supervisor's order
    and serve the model. Each runtime's program (this file's :func:`main`, ``mojo_scorer.py``) calls it.
    The supervisor starts it as ``PROGRAM <sandbox pid>``."""
    _die_with_parent()
    # The sandbox names itself: had it gone before this line ran, getppid() would already be init's.
    _exit_when_orphaned(int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid())
    # Events go to the original stdout; everything else written to fd 1 (the model's prints,
    # C libraries) goes to stderr, the log.
    events = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        warm_up()
    except ImportError as e:
        kind, reason = _failure(e)
        emit(events, "failed", kind=kind, reason=reason)
        sys.exit(3)
    emit(events, "warm", pid=os.getpid())
    line = sys.stdin.readline()
    if not line:
        return  # the sandbox went away before it needed this spare
    order = json.loads(line)
    _exit_at_eof(sys.stdin)
    os.environ.update(order.get("env") or {})
    os.chdir(order["model_dir"])
    try:
        model = load(order)
    except BaseException as e:  # noqa: BLE001 - whatever the model's code raises is the reason
        log(traceback.format_exc().rstrip())
        kind, reason = _failure(e)
        emit(events, "failed", kind=kind, reason=reason)
        sys.exit(3)
    Handler.model = model
    Handler.secret = order["secret"]
    Handler.deadline = float(order.get("deadline_seconds") or 60.0)
    server = ThreadingHTTPServer(("127.0.0.1", int(order.get("port", 0))), Handler)
    server.daemon_threads = True
    log(f"serving {len(model.inputs)} input fields -> {', '.join(n for n, _ in model.outputs)} "
        f"on 127.0.0.1:{server.server_address[1]}")
    emit(events, "listening", port=server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
