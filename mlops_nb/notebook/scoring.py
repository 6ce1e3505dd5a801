"""Scoring a DataFrame on a deployment: :func:`score`.

The frame's columns the model takes go to the deployment's scoring URL as the scoring API wants
them (strings, in batches); the predictions come back as a DataFrame typed from the schema.

Requests go through the client's own transport: its pooled connections, proxies, TLS choice
(``ca_bundle``, ``verify``) and retry policy, without its access token (a deployment has its
own passphrase). A batch is sent again only when it cannot have been scored: the connection
could not be made, or the deployment turned it away (404, 429, 503: not serving yet); never
after it went out and its answer did not come. The scoring URL and schema of a deployment are
kept on the client between calls and fetched again when the deployment answers from another
model, or refuses in a way that says it changed.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import requests

from mlops_nb.notebook.fanout import call_concurrently
from mlops_nb.notebook.frames import utc_times
from mlops_nb.notebook.generations import operations
from mlops_nb.notebook.lookup import deployment_id
from mlops_nb.notebook.progress import progress
from mlops_nb.wire.errors import ConnectionFailed, MLOpsError, WriteOutcomeUnknown
from mlops_nb.wire.messages import Message
from mlops_nb.wire.retry import causes, never_sent
from mlops_nb.wire.transport import TLS_ADVICE

__all__ = ["ScoringError", "score"]


class ScoringError(MLOpsError):
    """The deployment refused to score (``status`` is the HTTP status, ``message`` what it said)."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message
        super().__init__(f"the deployment answered {status}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.status, self.message))


# Scoring API data types -> pandas dtypes of the output columns.
_DTYPES = {"Float64": "float64", "Float32": "float32", "Int64": "Int64", "Int32": "Int32", "Bool": "boolean",
           "Str": "string", "Bytes": "string"}
# Answers that say the batch was turned away unscored: a just-healthy deployment's routes give these
# for a moment. 502 and 504 are not among them: the batch may have been scored behind them.
REFUSED = frozenset({404, 429, 503})
# Refusals after which the kept URL and schema may be out of date (the deployment changed or went).
_STALE = frozenset({400, 404, 503})


@dataclass(frozen=True)
class _Target:
    """What scoring a deployment needs that does not change while it serves the same model."""

    url: str
    model: str  # the experiment the schema is of (the scorer's answers carry it as "id")
    inputs: list[str]
    outputs: list[str]
    kinds: dict[str, str]


def _target(client: Any, deployment: Message | str, project: Message | str | None, headers: dict[str, str], *,
            fresh: bool) -> tuple[_Target, bool]:
    """The deployment's scoring target and whether it was kept from an earlier call; ``fresh``
    asks the gateway again (the name, the status and the schema)."""
    kept = client.__dict__.setdefault("_scoring_targets", {})  # gone with the client
    by_name = (("name", deployment, project) if isinstance(deployment, str) and not isinstance(project, Message)
               else None)
    target = None if fresh or by_name is None else kept.get(by_name)
    if target is None:
        target = deployment_id(client, deployment, project)
        if by_name is not None:
            kept[by_name] = target
    if not fresh and target in kept:
        return kept[target], True
    url = operations(client).scoring_url(target)
    if not url:
        raise ScoringError(503, f"deployment {target} has no scoring URL yet; wait_for_healthy first")
    schema = _answer(_send(client, "GET", url.rsplit("/", 1)[0] + "/schema", None, headers), url)
    fields = schema["schema"]
    kept[target] = _Target(url=url, model=str(schema.get("id", "")), inputs=[f["name"] for f in fields["inputFields"]],
                           outputs=[f["name"] for f in fields["outputFields"]],
                           kinds={f["name"]: f["dataType"] for f in fields["outputFields"]})
    return kept[target], False


def _send(client: Any, verb: str, url: str, body: bytes | None, headers: dict[str, str]) -> requests.Response:
    try:
        return client._transport.send_outside_api(verb, url, data=body, headers=headers, refused=REFUSED)
    except requests.exceptions.RequestException as e:
        *_, innermost = causes(e)
        reason = str(innermost)[:300] or type(innermost).__name__
        if isinstance(e, requests.exceptions.SSLError):
            raise ConnectionFailed(f"TLS verification failed for the scoring URL {url} ({reason}); "
                                   f"{TLS_ADVICE}") from None
        if verb == "GET" or never_sent(e):
            raise ConnectionFailed(f"could not reach the scoring URL {url} ({reason}); check the URL, your "
                                   "network and the client's proxies") from None
        raise WriteOutcomeUnknown(
            f"a batch was sent to {url} but no answer came ({reason}): it may or may not have been scored "
            "(and recorded by monitoring). It was not sent again, so that it is not scored twice; score "
            "the frame again if you need its predictions.", rpc="score") from None


def _answer(response: Any, url: str) -> Any:
    if response.status_code == 401:
        raise ScoringError(401, "the deployment wants a passphrase (or a different one): pass passphrase=")
    if not 200 <= response.status_code < 300:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text[:500]
        raise ScoringError(response.status_code, message)
    try:
        return json.loads(response.content)
    except ValueError:
        raise ScoringError(response.status_code, f"{url} answered with a body that is not JSON") from None


def _as_text(column: pd.Series) -> list[str]:
    """One input column as the scoring API wants it: strings, missing values as empty ones.

    A number goes as the shortest text that reads back to the same value at its own precision
    (a float32 0.1 as ``0.1``, not its float64 widening ``0.10000000149011612``; a NumPy float
    of an object column as ``0.1``, not its repr ``np.float64(0.1)``). Integers and float64
    columns are written in one C call (``json.dumps`` writes a float as ``repr`` does, the
    shortest text at float64 precision) and split; other kinds value by value.
    """
    kind = column.dtype.kind
    if isinstance(column.dtype, np.dtype) and (kind in "iu" or kind == "f" and column.dtype.itemsize == 8):
        values = column.to_numpy()
        text = json.dumps(values.tolist())[1:-1].split(", ") if len(values) else []
        if kind == "f" and not np.isfinite(values).all():
            # json writes NaN and Infinity: missing values are empty, infinities as repr writes them.
            text = [t if math.isfinite(v) else "" if v != v else repr(v)
                    for t, v in zip(text, values.tolist(), strict=True)]
        return text
    if pd.api.types.is_bool_dtype(column):
        text = column.map({True: "true", False: "false"})
    elif pd.api.types.is_datetime64_any_dtype(column):
        text = column.map(lambda v: v.isoformat() if not pd.isna(v) else None)
    elif pd.api.types.is_float_dtype(column):
        width = getattr(column.dtype, "numpy_dtype", column.dtype)  # float32 of a nullable Float32 column too
        text = pd.Series(column.to_numpy(dtype=width, na_value=np.nan).astype(str), index=column.index)
    else:
        text = column.astype(object).map(str)
    return text.where(column.notna(), "").tolist()


def _floats(values: list[str], dtype: str) -> np.ndarray:
    """Numbers written as text, parsed exactly (Python's correctly rounded reading), missing as NaN."""
    joined = ",".join(values)
    if joined.isascii() and joined.count(",") == len(values) - 1 and "" not in values:
        try:
            parsed = np.fromstring(joined, dtype="float64", sep=",") if values else np.empty(0)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.size == len(values):
            return parsed.astype(dtype, copy=False)
    return np.array([float(v) if v not in ("", "NaN") else np.nan for v in values], dtype="float64").astype(dtype)


def _typed(columns: list[list[str]], fields: list[str], kinds: dict[str, str], index: pd.Index) -> pd.DataFrame:
    typed: dict[str, Any] = {}
    for name, values in zip(fields, columns, strict=True):
        kind = kinds.get(name, "Str")
        if kind in ("Float64", "Float32"):
            typed[name] = pd.Series(_floats(values, _DTYPES[kind]), index=index)
            continue
        column = pd.Series(values, index=index, dtype=object).replace({"": None, "NaN": None})
        if kind == "Time64":
            typed[name] = pd.Series(utc_times(column).array, index=index)
        elif kind == "Bool":
            typed[name] = column.map({"true": True, "false": False, "1": True, "0": False}).astype("boolean")
        elif kind in ("Int64", "Int32"):
            typed[name] = pd.to_numeric(column).astype(_DTYPES[kind])
        else:
            typed[name] = pd.Series(values, index=index, dtype="string")
    return pd.DataFrame(typed, index=index, columns=fields)


class _Batches:
    """The frame's rows as the scoring API's bodies, one batch at a time (made when sent, not all at once).

    A frame whose inputs are all float64 columns is written straight from its numbers: ``json``
    writes each float as ``repr`` does, and quoting them makes them the API's strings. Others
    (float32 among them, written at their own precision) go column by column through :func:`_as_text`.
    """

    def __init__(self, frame: pd.DataFrame, inputs: list[str], size: int) -> None:
        self.fields = json.dumps(inputs)
        self.size = size
        numbers = all(frame[name].dtype == np.float64 for name in inputs) and bool(inputs)
        self.matrix = frame[inputs].to_numpy(dtype="float64") if numbers else None
        self.columns = [] if numbers else [_as_text(frame[name]) for name in inputs]

    def body(self, start: int) -> bytes:
        if self.matrix is not None:
            rows = _quoted(json.dumps(self.matrix[start:start + self.size].tolist()))
        else:
            chunk = list(map(list, zip(*(c[start:start + self.size] for c in self.columns), strict=True)))
            rows = json.dumps(chunk, separators=(",", ":"))
        return f'{{"fields":{self.fields},"rows":{rows}}}'.encode()


def _quoted(numbers: str) -> str:
    """``[[1.5, NaN], [2.0, Infinity]]`` as the API's strings: ``[["1.5",""],["2.0","inf"]]``."""
    text = '[["' + numbers[2:-2].replace("], [", '"],["').replace(", ", '","') + '"]]'
    if "N" in numbers or "I" in numbers:  # missing values are empty; infinities as repr writes them
        text = text.replace('"NaN"', '""').replace('"-Infinity"', '"-inf"').replace('"Infinity"', '"inf"')
    return text


def score(client: Any, deployment: Message | str, frame: pd.DataFrame, passphrase: str | None = None,
          batch_size: int = 1000, *, project: Message | str | None = None, progress: bool | None = None,
          concurrent_calls: int | None = None) -> pd.DataFrame:
    """Score ``frame`` on a deployment; returns the predictions as a DataFrame on ``frame``'s index.

    The columns the model takes (from the deployment's schema) are sent as the scoring API wants
    them (strings, in batches of ``batch_size`` rows, with a progress bar past a few batches);
    other columns are left out. The output columns are typed from the schema. A column the model
    needs and ``frame`` lacks raises ``KeyError`` naming it, before anything is sent; the short
    404/503 of a just-healthy deployment is retried (the client's retry policy); other refusals
    raise :class:`ScoringError` with the deployment's words; a batch whose answer was lost raises
    ``WriteOutcomeUnknown`` and is not sent again.

    Batches go ``concurrent_calls`` at a time (default ``settings.concurrent_calls``, at most
    the client's connections) over the client's pool; the rows come back in the frame's order
    whatever order they are answered in.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"score takes a pandas DataFrame, got {type(frame).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {passphrase}"} if passphrase else {})}
    kept, cached = _target(client, deployment, project, headers, fresh=False)
    scored = _Scored()
    try:
        _score_batches(client, kept, frame, batch_size, headers, progress, concurrent_calls, scored)
    except (ScoringError, KeyError) as e:
        # What was kept may be out of date: the deployment moved, went, or serves another model now.
        # Asked again only while nothing was scored, so that no batch is scored twice.
        stale = isinstance(e, KeyError) or e.status in _STALE
        if not (cached and stale and not scored.batches):
            raise
        was = kept
        kept, cached = _target(client, deployment, project, headers, fresh=True)
        if kept == was:  # nothing changed: the refusal stands
            raise
        _score_batches(client, kept, frame, batch_size, headers, progress, concurrent_calls, scored)
    if cached and scored.models - {kept.model}:  # answered by another model: type by its schema
        kept, _ = _target(client, deployment, project, headers, fresh=True)
    return _typed(scored.columns(len(scored.fields)), scored.fields, kept.kinds, frame.index)


class _Scored:
    """The answers of a frame's batches by batch number, and the models that gave them."""

    def __init__(self) -> None:
        self.batches: dict[int, list[list[str]]] = {}
        self.models: set[str] = set()
        self.fields: list[str] = []
        self.rows = 0
        self.lock = threading.Lock()

    def add(self, number: int, answer: dict[str, Any]) -> int:
        """Keep one batch's answer (from any thread); how many rows are scored now."""
        with self.lock:
            self.batches[number] = answer["score"]
            self.models.add(str(answer.get("id", "")))
            self.fields = answer.get("fields", self.fields)
            self.rows += len(answer["score"])
            return self.rows

    def columns(self, width: int) -> list[list[str]]:
        rows = [row for number in sorted(self.batches) for row in self.batches[number]]
        return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _score_batches(client: Any, kept: _Target, frame: pd.DataFrame, batch_size: int, headers: dict[str, str],
                   show: bool | None, concurrent_calls: int | None, scored: _Scored) -> None:
    """Score the frame's batches into ``scored``."""
    missing = [name for name in kept.inputs if name not in frame.columns]
    if missing:
        raise KeyError(f"the frame lacks the column{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"
                       f" that the model takes; it takes {', '.join(kept.inputs)}")
    batches = _Batches(frame, kept.inputs, batch_size)
    starts = range(0, len(frame), batch_size)
    scored.fields = list(kept.outputs)

    bar = _bar(len(frame)) if (show if show is not None else len(starts) > 3) else None
    shown = threading.Lock()

    def one(number: int, start: int) -> None:
        # Kept as soon as it is answered: the caller must know of every batch scored, even when
        # another batch fails first.
        done = scored.add(number, _answer(_send(client, "POST", kept.url, batches.body(start), headers), kept.url))
        if bar is not None:
            with shown:
                bar.update(done, f"{done:,} / {len(frame):,} rows", len(frame))

    try:
        call_concurrently([partial(one, number, start) for number, start in enumerate(starts)], concurrent_calls)
    finally:
        if bar is not None:
            bar.close(scored.rows, f"{scored.rows:,} rows scored", scored.rows == len(frame))


def _bar(total: int) -> Any:
    return progress("scoring", "rows", total)
