"""A scriptable fake CDP endpoint on 127.0.0.1 for fault injection.

Used *in addition to* the real Chromium: it lets a test send garbage
frames, drop the connection mid-command, delay answers or push events a
real browser would not (unknown methods, floods).  Minimal RFC 6455 server:
text frames only, no extensions.
"""
from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from typing import Callable

import orjson

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Handler = Callable[["FakePeer", dict], None]


class FakePeer:
    """The server side of one accepted websocket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def send_json(self, obj: object) -> None:
        self.send_text(orjson.dumps(obj))

    def send_text(self, data: bytes) -> None:
        n = len(data)
        if n < 126:
            header = struct.pack("!BB", 0x81, n)
        elif n < 65536:
            header = struct.pack("!BBH", 0x81, 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 127, n)
        self.sock.sendall(header + data)

    def drop(self) -> None:
        """Close the TCP connection abruptly (no close frame)."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def recv_message(self) -> dict | None:
        head = self._exact(2)
        if head is None:
            return None
        b1, b2 = head
        opcode = b1 & 0x0F
        length = b2 & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._exact(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._exact(8))[0]
        mask = self._exact(4) if b2 & 0x80 else b"\0\0\0\0"
        payload = bytearray(self._exact(length) or b"")
        for i in range(len(payload)):
            payload[i] ^= mask[i % 4]
        if opcode == 0x8:
            return None
        return orjson.loads(bytes(payload))

    def _exact(self, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.sock.recv(n - len(buf))
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf


class FakeCDPServer:
    """Accepts websocket connections and passes each command to ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/devtools/browser/fake"
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, sock: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk:
                return
            request += chunk
        key = next(line.split(b":", 1)[1].strip() for line in request.split(b"\r\n")
                   if line.lower().startswith(b"sec-websocket-key"))
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        peer = FakePeer(sock)
        for _ in range(100_000):
            msg = peer.recv_message()
            if msg is None:
                return
            self.handler(peer, msg)

    def close(self) -> None:
        self._listener.close()
        for t in self._threads:
            t.join(2)

    def __enter__(self) -> "FakeCDPServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
