"""Fault injection: the sandbox gateway as a flaky network would show it (off by default).

``Sandbox(faults=0.2, fault_seed=7)`` or ``mlops-nb sandbox --faults 0.2 --fault-seed 7``:
each API call fails with probability ``faults``, in one of four ways, chosen evenly:

``unavailable``
    HTTP 503 UNAVAILABLE with an RpcStatus body; the call is not handled.
``throttled``
    HTTP 429 RESOURCE_EXHAUSTED with ``Retry-After: 1``; the call is not handled.
``dropped_before``
    the request is read, then the connection is closed with no answer; not handled.
``dropped_after``
    the call is handled (a write is applied and committed), then the connection is
    closed with no answer: what a client cannot tell from ``dropped_before``.

Only the gateway's API routes fail. The identity provider and the index page do not:
a token response lost while refresh tokens rotate would end the session, which is
another rehearsal. The sandbox's own demo seeding runs before faults are switched on.
``FaultInjector.injected`` counts what was injected, by kind.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

from mlops_nb.api import API

__all__ = ["FaultInjector", "FAULT_KINDS", "RETRY_AFTER_SECONDS"]

FAULT_KINDS = ("unavailable", "throttled", "dropped_before", "dropped_after")
RETRY_AFTER_SECONDS = 1

_API_PREFIXES = tuple(sorted({prefix + "/" for prefix in API.servers.values()}))

Scope = dict[str, Any]
Receive = Any
Send = Any


class FaultInjector:
    """ASGI middleware failing a share (``rate``, 0 to 1) of API calls; ``seed`` makes the
    sequence of draws repeatable. Injects nothing until :attr:`active` is set."""

    def __init__(self, app: Any, rate: float, seed: int | None = None) -> None:
        if not (isinstance(rate, (int, float)) and 0.0 <= rate <= 1.0):
            raise ValueError(f"faults must be a share of calls from 0 to 1 (0.2 fails one call in five), got {rate!r}")
        self.app = app
        self.rate = float(rate)
        self.seed = seed
        self.active = False
        self.injected: Counter[str] = Counter()
        # Draws happen on the server's event loop thread only, so one generator is enough.
        self._random = random.Random(seed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._fails(scope):
            await self.app(scope, receive, send)
            return
        kind = self._random.choice(FAULT_KINDS)
        self.injected[kind] += 1
        if kind == "dropped_after":
            await self.app(scope, receive, _discard)
        else:
            await _read_body(receive)
        if kind == "unavailable":
            await _rpc_error(send, 503, 14, "the sandbox injected a fault (--faults): service unavailable, "
                                            "the call was not handled; try again")
        elif kind == "throttled":
            await _rpc_error(send, 429, 8, "the sandbox injected a fault (--faults): too many requests, "
                                           f"the call was not handled; try again in {RETRY_AFTER_SECONDS} s",
                             [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())])
        else:
            await _drop_connection(send)

    def _fails(self, scope: Scope) -> bool:
        return (self.active and scope["type"] == "http" and scope["path"].startswith(_API_PREFIXES)
                and self._random.random() < self.rate)

    def __repr__(self) -> str:
        counts = ", ".join(f"{kind}={self.injected[kind]}" for kind in FAULT_KINDS)
        return f"<FaultInjector rate={self.rate} seed={self.seed} {'on' if self.active else 'off'}: {counts}>"


async def _read_body(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def _discard(message: dict[str, Any]) -> None:
    """A ``send`` that loses the answer, as a connection cut on its way back would."""


async def _rpc_error(send: Send, status: int, code: int, message: str,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"code": code, "message": message, "details": []}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def _drop_connection(send: Send) -> None:
    # ASGI has no "close without answering"; uvicorn's ``send`` is a method of the request
    # cycle that holds the connection's asyncio transport, which can.
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise RuntimeError("dropping a connection needs uvicorn's HTTP server (the sandbox's)")
    transport.abort()
    # Let uvicorn learn of the closed connection before this call returns, so it does not try
    # to answer on it.
    for _ in range(100):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0)
