"""Stdlib clients for long-lived and large requests through the edge: a streamed upload, server-sent events and a
WebSocket (RFC 6455), each telling how the server ended it.

https:// and wss:// go over TLS with `context` (an unverified one for the tests' self-signed edge); http:// and
ws:// are accepted too, for checks against the app alone (tests/unit/test_node_app_streams.py). `host` is the
Host header and the TLS server name when the URL names an address (the edge answers only its domain).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import ssl
import struct
import threading
import time
from typing import Any, NamedTuple, Optional
from urllib.parse import urlsplit

PATTERN = bytes(range(256)) * 256   # 64 KiB: an upload is this, repeated and cut at its size


class _HTTPS(http.client.HTTPSConnection):
    """HTTPSConnection whose TLS server name is `sni` rather than the address connected to."""

    def __init__(self, address: str, port: int, sni: str, **kwargs):
        super().__init__(address, port, **kwargs)
        self._sni = sni

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self._sni)


def _target(url: str, host: Optional[str]) -> tuple[bool, str, int, str, str]:
    """(tls, address, port, path with query, Host header) of an http(s):// or ws(s):// URL."""
    parts = urlsplit(url)
    tls = parts.scheme in ("https", "wss")
    if parts.scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"unsupported URL scheme: {url}")
    port = parts.port or (443 if tls else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return tls, parts.hostname, port, path, host or parts.netloc


def _connection(url: str, context: Optional[ssl.SSLContext], host: Optional[str], timeout: float):
    """An HTTP(S) connection for url, and the request path and headers it needs."""
    tls, address, port, path, host_header = _target(url, host)
    if tls:
        sni = host_header.rsplit(":", 1)[0] if host else address
        conn = _HTTPS(address, port, sni, timeout=timeout, context=context or ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
    return conn, path, {"Host": host_header}


# --- upload -------------------------------------------------------------------------------------------------

def upload_chunks(size_bytes: int):
    """The generated upload body of size_bytes, in 64 KiB chunks: the same bytes on every call."""
    full, rest = divmod(size_bytes, len(PATTERN))
    for _ in range(full):
        yield PATTERN
    if rest:
        yield PATTERN[:rest]


def expected_sha256(size_bytes: int) -> str:
    """The sha256 (hex) of the body upload() sends for size_bytes."""
    digest = hashlib.sha256()
    for chunk in upload_chunks(size_bytes):
        digest.update(chunk)
    return digest.hexdigest()


def upload(url: str, size_bytes: int, context: Optional[ssl.SSLContext] = None, host: Optional[str] = None,
           timeout: float = 60.0) -> tuple[int, Any]:
    """POST size_bytes of generated content to url, streamed with a Content-Length (never held in memory):
    (status, the answer's JSON, or its text when it is not JSON)."""
    conn, path, headers = _connection(url, context, host, timeout)
    headers.update({"Content-Type": "application/octet-stream", "Content-Length": str(size_bytes)})
    try:
        try:
            conn.request("POST", path, body=upload_chunks(size_bytes), headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass   # the server answered early (a 413, say) and stopped reading: its answer may still be there
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        try:
            return response.status, json.loads(body)
        except ValueError:
            return response.status, body
    finally:
        conn.close()


# --- server-sent events -------------------------------------------------------------------------------------

class Event(NamedTuple):
    """One server-sent event: its type, its data (lines joined by newlines), when it arrived (time.monotonic())."""
    event: str
    data: str
    at: float

    def json(self) -> Any:
        return json.loads(self.data)


class EventStream:
    """GET url as text/event-stream and read its events in a background thread into `events`.

    `ended` is None while the stream is open, then how it ended: "clean" (the server ended the body after a
    `bye` event), "eof" (it ended without a `bye`), "reset", "closed" (by close()) or "error: <what>".
    `status` and `headers` are the response's; a non-200 answer is read as a body, not as events."""

    def __init__(self, url: str, context: Optional[ssl.SSLContext] = None, host: Optional[str] = None,
                 timeout: float = 30.0):
        """Connects and reads the response head; timeout also bounds each wait for the next line."""
        self.events: list[Event] = []
        self.ended: Optional[str] = None
        self._closing = False
        self._changed = threading.Condition()
        self._conn, path, headers = _connection(url, context, host, timeout)
        self._conn.request("GET", path, headers={**headers, "Accept": "text/event-stream"})
        self._sock = self._conn.sock   # kept: http.client lets go of it once the response says Connection: close
        self._response = self._conn.getresponse()
        self.status, self.headers = self._response.status, self._response.headers
        self.body = "" if self.status == 200 else self._response.read().decode(errors="replace")
        self._thread = threading.Thread(target=self._read, daemon=True, name="sse")
        if self.status == 200:
            self._thread.start()
        else:
            self._end("eof")

    def _read(self) -> None:
        event, data = "message", []
        try:
            while True:
                line = self._response.readline()
                if not line:
                    return self._end("clean" if self.events and self.events[-1].event == "bye" else "eof")
                line = line.decode().rstrip("\r\n")
                if not line:   # a blank line dispatches the event
                    if data:
                        with self._changed:
                            self.events.append(Event(event, "\n".join(data), time.monotonic()))
                            self._changed.notify_all()
                    event, data = "message", []
                    continue
                field, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if field == "event":
                    event = value
                elif field == "data":
                    data.append(value)
        except ConnectionResetError:
            self._end("reset")
        except Exception as exc:  # noqa: BLE001 - how the stream broke is the result
            self._end("closed" if self._closing else f"error: {type(exc).__name__}: {exc}")

    def _end(self, how: str) -> None:
        with self._changed:
            self.ended = self.ended or ("closed" if self._closing and how != "clean" else how)
            self._changed.notify_all()

    def wait_for(self, event: str, timeout: float = 5.0, count: int = 1) -> list[Event]:
        """The events of that type once there are `count` of them (fewer if the stream ends or time runs out)."""
        with self._changed:
            self._changed.wait_for(lambda: self.ended or len(self.of(event)) >= count, timeout)
            return self.of(event)

    def wait_ended(self, timeout: float = 5.0) -> Optional[str]:
        """How the stream ended, waiting up to timeout; None if it is still open."""
        with self._changed:
            self._changed.wait_for(lambda: self.ended, timeout)
            return self.ended

    def of(self, event: str) -> list[Event]:
        return [e for e in self.events if e.event == event]

    def close(self) -> None:
        """Drop the connection (the reader thread ends with "closed" unless the stream had ended already)."""
        self._closing = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._response.close()
        self._conn.close()
        self._sock.close()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


# --- WebSocket ----------------------------------------------------------------------------------------------

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455 section 1.3


class HandshakeError(Exception):
    """The server did not switch protocols: `status` and `head` (its response head) say what it did instead."""

    def __init__(self, message: str, status: int, head: str):
        super().__init__(message)
        self.status, self.head = status, head


class WebSocket:
    """A WebSocket client over a raw socket (TLS for wss:// with `context`); the handshake happens on creation.

    After the server's close frame, `close_code` and `close_reason` hold what it said; the client answers it with
    its own close frame unless echo_close is False (to see what a server does with a client that does not)."""

    def __init__(self, url: str, context: Optional[ssl.SSLContext] = None, host: Optional[str] = None,
                 timeout: float = 10.0, echo_close: bool = True):
        tls, address, port, path, host_header = _target(url, host)
        sock = socket.create_connection((address, port), timeout=timeout)
        if tls:
            sni = host_header.rsplit(":", 1)[0] if host else address
            sock = (context or ssl.create_default_context()).wrap_socket(sock, server_hostname=sni)
        self.sock, self.echo_close, self._buffer = sock, echo_close, b""
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.close_sent = False
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = self._read_head()
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split()[1])
        fields = {name.strip().lower(): value.strip() for name, _, value in (ln.partition(":") for ln in lines)}
        if status != 101:
            sock.close()
            raise HandshakeError(f"no WebSocket: {status_line}", status, head)
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if fields.get("upgrade", "").lower() != "websocket" or fields.get("sec-websocket-accept") != accept:
            sock.close()
            raise HandshakeError("bad Upgrade or Sec-WebSocket-Accept in the 101 answer", status, head)

    def _read_head(self) -> str:
        while b"\r\n\r\n" not in self._buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise HandshakeError("the server closed the connection during the handshake", 0,
                                     self._buffer.decode(errors="replace"))
            self._buffer += chunk
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)   # what follows the head is the first frames
        return head.decode(errors="replace")

    def _fill(self, n: int) -> None:
        """At least n bytes in the buffer (a timeout leaves what arrived there, for the next recv)."""
        while len(self._buffer) < n:
            if self.sock.fileno() < 0:
                raise EOFError("the connection is closed")
            chunk = self.sock.recv(65536)
            if not chunk:   # the server ended the connection: so do we, as a browser would, at once
                self.sock.close()
                raise EOFError("the server closed the connection")
            self._buffer += chunk

    def send_frame(self, opcode: int, payload: bytes = b"", fin: bool = True) -> None:
        """One masked frame (as every client frame must be), with a 7-, 16- or 64-bit length as its size needs."""
        size = len(payload)
        length = struct.pack("!B", 0x80 | size) if size < 126 else \
            struct.pack("!BH", 0x80 | 126, size) if size < 65536 else struct.pack("!BQ", 0x80 | 127, size)
        mask = os.urandom(4)
        keystream = (mask * (size // 4 + 1))[:size]   # XOR as one big integer: fast for large payloads too
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(size, "big")
        self.sock.sendall(struct.pack("!B", (0x80 if fin else 0) | opcode) + length + mask + masked)

    def send(self, text: str) -> None:
        """A text message."""
        self.send_frame(TEXT, text.encode())

    def ping(self, payload: bytes = b"") -> None:
        self.send_frame(PING, payload)

    def recv(self, timeout: float = 5.0) -> tuple[int, Any]:
        """The next frame as (opcode, payload): str for text, bytes otherwise. Raises TimeoutError when none comes
        in time and EOFError when the server has closed the connection. A close frame is recorded (close_code,
        close_reason) and answered (see echo_close)."""
        self.sock.settimeout(timeout)
        self._fill(2)
        first, second = self._buffer[0], self._buffer[1]
        if second & 0x80:
            raise ValueError("the server masked a frame")
        size, at = second & 0x7F, 2
        if size == 126:
            self._fill(4)
            (size,), at = struct.unpack_from("!H", self._buffer, 2), 4
        elif size == 127:
            self._fill(10)
            (size,), at = struct.unpack_from("!Q", self._buffer, 2), 10
        self._fill(at + size)
        opcode, payload, self._buffer = first & 0x0F, self._buffer[at:at + size], self._buffer[at + size:]
        if opcode == CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
            self.close_reason = payload[2:].decode(errors="replace")
            if self.echo_close and not self.close_sent:
                try:
                    self._send_close(self.close_code)
                except OSError:
                    pass   # the server did not wait for our answer
        return opcode, payload.decode() if opcode == TEXT else payload

    def _send_close(self, code: Optional[int], reason: str = "") -> None:
        self.close_sent = True
        self.send_frame(CLOSE, struct.pack("!H", code) + reason.encode() if code else b"")

    def wait_end(self, timeout: float = 5.0) -> str:
        """Read (and drop) frames until the server ends the connection: "eof", "reset" or "timeout"."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.recv(max(0.01, deadline - time.monotonic()))
        except EOFError:
            return "eof"
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            return "timeout"

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Our close frame (unless one was sent), up to 2 s for the server to end the connection, then the socket."""
        try:
            if not self.close_sent:
                self._send_close(code, reason)
                self.wait_end(2.0)
        except OSError:
            pass
        finally:
            self.sock.close()
