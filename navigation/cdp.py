"""A synchronous Chrome DevTools Protocol client over one websocket.

Why synchronous: a Drover worker drives one browser at a time and every
step waits for its answer anyway; a blocking client with no event loop and
no helper threads has the fewest moving parts and the shortest hot path
(one ``send`` and, usually, one ``recv`` per command).

Threading stance: **one owner per connection.**  The thread that opened the
connection is its owner; a call from any other thread raises
``RuntimeError`` at once instead of interleaving frames.  Hand a connection
to another thread explicitly with :meth:`CDPConnection.transfer_ownership`.
No locks are taken on the hot path.

Events are never lost while a command waits: every frame read that is not
the awaited response is appended to an in-memory buffer, which callers
drain with :meth:`CDPConnection.pop_events` or search with
:meth:`CDPConnection.wait_for_event`.  The buffer is bounded
(``max_buffered_events``); on overflow the oldest event is dropped, counted
in ``stats.events_dropped`` and logged — never silently.

Flattened sessions: :meth:`CDPConnection.attach` uses
``Target.attachToTarget`` with ``flatten: true`` so one websocket carries the
browser target and any number of pages; :class:`CDPSession` is a thin view
that adds the ``sessionId``.

Unknown events and fields are passed through as plain data: no typed
protocol bindings, so a newer browser never breaks the client.

A ``before_send`` hook runs before every command; the engine plugs the
coordination ownership guard in there so a session is only ever driven by
its current owner.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import orjson
import websocket

from navigation.errors import (
    CDPConnectionLost,
    CDPProtocolError,
    CDPResponseError,
    CDPTargetClosed,
    CDPTimeout,
)

log = logging.getLogger(__name__)

_TEXT = websocket.ABNF.OPCODE_TEXT
_CLOSE = websocket.ABNF.OPCODE_CLOSE
_LOOPBACK = ["127.0.0.1", "localhost", "::1"]
_MAX_POSTED = 10_000  # posted commands whose answers are not read yet (they are, at the next wait)


@dataclass(slots=True)
class CDPEvent:
    """One CDP event exactly as received; ``params`` is the raw dict."""

    method: str
    params: dict[str, Any]
    session_id: str | None = None


@dataclass(slots=True)
class ClientStats:
    """Counters a caller can read at any time (plain ints, owner thread only writes)."""

    commands: int = 0
    by_method: dict[str, int] = field(default_factory=dict)  # commands sent, per CDP method
    events_received: int = 0
    events_dropped: int = 0
    late_responses: int = 0
    peak_buffered: int = 0


@dataclass(slots=True)
class _Pending:
    abandoned: set[int] = field(default_factory=set)  # timed out: a late answer is dropped and counted
    posted: dict[int, str] = field(default_factory=dict)  # sent with post(): id -> method, answer not awaited


class CDPConnection:
    """One websocket to a browser (or page) DevTools endpoint."""

    def __init__(
        self,
        ws: websocket.WebSocket,
        url: str,
        *,
        default_timeout: float = 30.0,
        max_buffered_events: int = 100_000,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self._ws = ws
        self.url = url
        self.default_timeout = default_timeout
        self.max_buffered_events = max_buffered_events
        self.before_send = before_send
        self.stats = ClientStats()
        self._events: deque[CDPEvent] = deque()
        self._pending = _Pending()
        self._next_id = 0
        self._owner = threading.get_ident()
        self._closed_reason: str | None = None

    # -- opening and closing -------------------------------------------------

    @classmethod
    def connect(cls, url: str, *, timeout: float = 10.0, **kwargs: Any) -> "CDPConnection":
        """Open a websocket to ``url`` (a ``ws://127.0.0.1:...`` DevTools URL)."""
        try:
            ws = websocket.create_connection(
                url,
                timeout=timeout,
                skip_utf8_validation=True,
                suppress_origin=True,
                enable_multithread=False,
                http_no_proxy=_LOOPBACK,
                sockopt=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            )
        except (OSError, websocket.WebSocketException) as exc:
            raise CDPConnectionLost(f"cannot connect to {url}: {exc}") from exc
        return cls(ws, url, **kwargs)

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    def close(self) -> None:
        """Close the websocket; further commands raise :class:`CDPConnectionLost`."""
        if self._closed_reason is None:
            self._closed_reason = "closed by client"
            try:
                self._ws.close(timeout=1)
            except (OSError, websocket.WebSocketException) as exc:
                log.debug("cdp close: socket already broken", extra={"url": self.url, "error": str(exc)})

    def __enter__(self) -> "CDPConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def transfer_ownership(self) -> None:
        """Make the calling thread the connection's owner (the previous owner must stop using it)."""
        self._owner = threading.get_ident()

    # -- commands ------------------------------------------------------------

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one command and return its ``result``; raise a typed error otherwise."""
        self._usable(method)
        msg_id = self._write(method, params, session_id)
        deadline = time.monotonic() + (self.default_timeout if timeout is None else timeout)
        while True:
            msg = self._read(deadline, method, msg_id)
            if "id" in msg:
                if msg["id"] == msg_id:
                    error = msg.get("error")
                    if error is not None:
                        raise _response_error(method, error)
                    return msg.get("result", {})
                self._late_response(msg)
            else:
                self._buffer(msg)
                if (session_id is not None and msg.get("method") == "Target.detachedFromTarget"
                        and msg.get("params", {}).get("sessionId") == session_id):
                    # The page closed (window.close, crash) while the command waited: it will never answer.
                    self._pending.abandoned.add(msg_id)
                    raise CDPTargetClosed(f"{method}: target of session {session_id} closed before answering")

    def post(self, method: str, params: dict[str, Any] | None = None, *, session_id: str | None = None) -> None:
        """Send a command whose answer nobody waits for (it is read, and dropped, by a later wait).

        For clean-up whose outcome changes nothing a caller does next — releasing an object group — so it
        costs no round trip.  Commands of one session run in the order sent, so a later command still
        sees its effect.  A failure is logged at debug level when its answer is read.
        """
        self._usable(method)
        msg_id = self._write(method, params, session_id)
        if len(self._pending.posted) >= _MAX_POSTED:  # nothing read for long: the oldest counts as abandoned
            oldest = next(iter(self._pending.posted))
            del self._pending.posted[oldest]
            self._pending.abandoned.add(oldest)
        self._pending.posted[msg_id] = method

    def send_all(
        self,
        commands: Iterable[tuple[str, dict[str, Any] | None, str | None]],
        *,
        timeout: float | None = None,
    ) -> list[dict[str, Any]]:
        """Send several commands at once and return their results in order, once every one has answered.

        Why: commands that do not depend on each other (the storage, cookie and cache clears of a reset)
        cost one round trip together instead of one each, and the browser works on them meanwhile.
        Each command is ``(method, params, session_id)``; every one passes ``before_send`` as a single
        :meth:`send` does.  Errors wait for the whole batch: the first failed command's
        :class:`CDPResponseError` is raised after all have answered, so no answer is left unread.
        """
        self._usable("batch")
        sent: dict[int, tuple[int, str, str | None]] = {}  # msg id -> (position, method, session)
        for method, params, session_id in commands:
            try:
                sent[self._write(method, params, session_id)] = (len(sent), method, session_id)
            except Exception:  # lost, or refused by before_send: the answers of those sent are not waited for
                self._pending.abandoned.update(sent)
                raise
        results: list[dict[str, Any] | None] = [None] * len(sent)
        errors: list[tuple[int, CDPResponseError]] = []
        waiting = dict(sent)
        what = f"batch of {len(sent)} ({', '.join(sorted({m for _, m, _ in sent.values()}))})"
        deadline = time.monotonic() + (self.default_timeout if timeout is None else timeout)
        while waiting:
            try:
                msg = self._read(deadline, what, None)
            except CDPTimeout:
                self._pending.abandoned.update(waiting)
                raise
            if "id" in msg:
                entry = waiting.pop(msg["id"], None)
                if entry is None:
                    self._late_response(msg)
                    continue
                position, method, _session = entry
                error = msg.get("error")
                if error is not None:
                    errors.append((position, _response_error(method, error)))
                else:
                    results[position] = msg.get("result", {})
                continue
            self._buffer(msg)
            if msg.get("method") == "Target.detachedFromTarget":
                gone = msg.get("params", {}).get("sessionId")
                if gone is not None and any(session == gone for _, _, session in waiting.values()):
                    self._pending.abandoned.update(waiting)
                    raise CDPTargetClosed(f"{what}: target of session {gone} closed before answering")
        if errors:
            raise min(errors, key=lambda e: e[0])[1]
        return [r if r is not None else {} for r in results]

    def _usable(self, what: str) -> None:
        if self._owner != threading.get_ident():
            raise RuntimeError("CDPConnection used from a thread that does not own it")
        if self._closed_reason is not None:
            raise CDPConnectionLost(f"{what}: connection to {self.url} is closed ({self._closed_reason})")

    def _write(self, method: str, params: dict[str, Any] | None, session_id: str | None) -> int:
        """One command on the wire (after ``before_send``, counted); its message id."""
        if self.before_send is not None:
            self.before_send()
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method}
        if params:
            message["params"] = params
        if session_id is not None:
            message["sessionId"] = session_id
        try:
            self._ws.send(orjson.dumps(message), _TEXT)
        except (OSError, websocket.WebSocketException) as exc:
            raise self._lost(method, exc) from exc
        self.stats.commands += 1
        self.stats.by_method[method] = self.stats.by_method.get(method, 0) + 1
        return self._next_id

    # -- events --------------------------------------------------------------

    def pop_events(self, method: str | None = None, session_id: str | None = None) -> list[CDPEvent]:
        """Remove and return buffered events (optionally only those of one method/session)."""
        if method is None and session_id is None:
            events = list(self._events)
            self._events.clear()
            return events
        kept: deque[CDPEvent] = deque()
        taken: list[CDPEvent] = []
        for ev in self._events:
            if (method is None or ev.method == method) and (session_id is None or ev.session_id == session_id):
                taken.append(ev)
            else:
                kept.append(ev)
        self._events = kept
        return taken

    @property
    def buffered_events(self) -> int:
        return len(self._events)

    def wait_for_event(
        self,
        method: str | Iterable[str] | None = None,
        predicate: Callable[[CDPEvent], bool] | None = None,
        *,
        session_id: str | None = None,
        timeout: float | None = None,
    ) -> CDPEvent:
        """Return (and remove) the first buffered or arriving event that matches.

        Non-matching events stay buffered in arrival order.  Raises
        :class:`CDPTimeout` when nothing matches in time.
        """
        if self._owner != threading.get_ident():
            raise RuntimeError("CDPConnection used from a thread that does not own it")
        methods = {method} if isinstance(method, str) else (set(method) if method is not None else None)

        def matches(ev: CDPEvent) -> bool:
            return ((methods is None or ev.method in methods)
                    and (session_id is None or ev.session_id == session_id)
                    and (predicate is None or predicate(ev)))

        for i, ev in enumerate(self._events):
            if matches(ev):
                del self._events[i]
                return ev
        what = f"event {sorted(methods) if methods else '*'}"
        deadline = time.monotonic() + (self.default_timeout if timeout is None else timeout)
        while True:
            msg = self._read(deadline, what, None)
            if "id" in msg:
                self._late_response(msg)
                continue
            ev = self._to_event(msg)
            if matches(ev):
                self.stats.events_received += 1
                return ev
            self._append(ev)

    # -- internals -----------------------------------------------------------

    def _read(self, deadline: float, what: str, msg_id: int | None) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out(what, msg_id)
        if self._closed_reason is not None:
            raise CDPConnectionLost(f"{what}: connection to {self.url} is closed ({self._closed_reason})")
        ws = self._ws
        ws.settimeout(remaining)
        try:
            opcode, data = ws.recv_data()
        except websocket.WebSocketTimeoutException as exc:
            raise self._timed_out(what, msg_id) from exc
        except socket.timeout as exc:
            raise self._timed_out(what, msg_id) from exc
        except (OSError, websocket.WebSocketException) as exc:
            raise self._lost(what, exc) from exc
        if opcode == _CLOSE:
            raise self._lost(what, "peer closed the websocket")
        try:
            msg = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CDPProtocolError(f"{what}: frame is not JSON ({len(data)} bytes): {exc}") from exc
        if not isinstance(msg, dict):
            raise CDPProtocolError(f"{what}: frame is JSON but not an object: {type(msg).__name__}")
        return msg

    def _timed_out(self, what: str, msg_id: int | None) -> CDPTimeout:
        if msg_id is not None:
            self._pending.abandoned.add(msg_id)
        return CDPTimeout(f"{what}: no answer from {self.url} in time")

    def _lost(self, what: str, exc: object) -> CDPConnectionLost:
        self._closed_reason = f"lost: {exc}"
        try:
            self._ws.shutdown()
        except (OSError, websocket.WebSocketException) as shut_exc:
            log.debug("cdp shutdown after loss failed", extra={"url": self.url, "error": str(shut_exc)})
        return CDPConnectionLost(f"{what}: connection to {self.url} lost ({exc})")

    def _late_response(self, msg: dict[str, Any]) -> None:
        msg_id = msg.get("id")
        posted = self._pending.posted.pop(msg_id, None) if isinstance(msg_id, int) else None
        if posted is not None:
            if "error" in msg:
                log.debug("cdp posted command failed", extra={"url": self.url, "method": posted,
                                                              "error": str(msg["error"])[:200]})
            return
        if msg_id in self._pending.abandoned:
            self._pending.abandoned.discard(msg_id)
            self.stats.late_responses += 1
            log.debug("cdp late response discarded", extra={"url": self.url, "msg_id": msg_id})
            return
        raise CDPProtocolError(f"response with unexpected id {msg_id!r} from {self.url}")

    @staticmethod
    def _to_event(msg: dict[str, Any]) -> CDPEvent:
        method = msg.get("method")
        if not isinstance(method, str):
            raise CDPProtocolError(f"frame is neither a response nor an event: keys {sorted(msg)[:5]}")
        params = msg.get("params")
        return CDPEvent(method, params if isinstance(params, dict) else {}, msg.get("sessionId"))

    def _buffer(self, msg: dict[str, Any]) -> None:
        self._append(self._to_event(msg))
        self.stats.events_received += 1

    def _append(self, ev: CDPEvent) -> None:
        events = self._events
        if len(events) >= self.max_buffered_events:
            dropped = events.popleft()
            self.stats.events_dropped += 1
            if self.stats.events_dropped == 1 or self.stats.events_dropped % 1000 == 0:
                log.warning("cdp event buffer full: dropping oldest",
                            extra={"url": self.url, "dropped_method": dropped.method,
                                   "events_dropped": self.stats.events_dropped,
                                   "limit": self.max_buffered_events})
        events.append(ev)
        if len(events) > self.stats.peak_buffered:
            self.stats.peak_buffered = len(events)

    # -- targets -------------------------------------------------------------

    def attach(self, target_id: str, *, timeout: float | None = None) -> "CDPSession":
        """Attach to a target with a flattened session on this same websocket."""
        result = self.send("Target.attachToTarget", {"targetId": target_id, "flatten": True}, timeout=timeout)
        return CDPSession(self, result["sessionId"], target_id)

    def new_page(self, url: str = "about:blank", *, timeout: float | None = None,
                 browser_context_id: str | None = None) -> "CDPSession":
        """Create a page target and attach to it."""
        params: dict[str, Any] = {"url": url}
        if browser_context_id is not None:
            params["browserContextId"] = browser_context_id
        target_id = self.send("Target.createTarget", params, timeout=timeout)["targetId"]
        return self.attach(target_id, timeout=timeout)


def _response_error(method: str, error: dict[str, Any]) -> CDPResponseError:
    return CDPResponseError(method, int(error.get("code", 0)), str(error.get("message", "")), error.get("data"))


class CDPSession:
    """A flattened target session: the same connection, commands tagged with ``sessionId``."""

    __slots__ = ("connection", "session_id", "target_id")

    def __init__(self, connection: CDPConnection, session_id: str, target_id: str) -> None:
        self.connection = connection
        self.session_id = session_id
        self.target_id = target_id

    def send(self, method: str, params: dict[str, Any] | None = None, *,
             timeout: float | None = None) -> dict[str, Any]:
        return self.connection.send(method, params, session_id=self.session_id, timeout=timeout)

    def post(self, method: str, params: dict[str, Any] | None = None) -> None:
        """:meth:`CDPConnection.post` on this session: sent, its answer not waited for."""
        self.connection.post(method, params, session_id=self.session_id)

    def wait_for_event(self, method: str | Iterable[str] | None = None,
                       predicate: Callable[[CDPEvent], bool] | None = None, *,
                       timeout: float | None = None) -> CDPEvent:
        return self.connection.wait_for_event(method, predicate, session_id=self.session_id, timeout=timeout)

    def pop_events(self, method: str | None = None) -> list[CDPEvent]:
        return self.connection.pop_events(method, self.session_id)

    def evaluate(self, expression: str, *, await_promise: bool = False, timeout: float | None = None,
                 user_gesture: bool = False) -> Any:
        """``Runtime.evaluate`` returning the value; a thrown exception becomes a :class:`CDPResponseError`."""
        params: dict[str, Any] = {"expression": expression, "returnByValue": True}
        if await_promise:
            params["awaitPromise"] = True
        if user_gesture:
            params["userGesture"] = True
        result = self.send("Runtime.evaluate", params, timeout=timeout)
        details = result.get("exceptionDetails")
        if details is not None:
            text = details.get("exception", {}).get("description") or details.get("text", "exception")
            raise CDPResponseError("Runtime.evaluate", -1, str(text).splitlines()[0])
        return result.get("result", {}).get("value")

    def close(self, *, timeout: float | None = None) -> None:
        """Close the page target."""
        self.connection.send("Target.closeTarget", {"targetId": self.target_id}, timeout=timeout)


__all__ = ["CDPConnection", "CDPSession", "CDPEvent", "ClientStats"]
