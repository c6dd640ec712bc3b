"""The live tests' node app (tests/live/apps/node-backend/server.js) run by this machine's node with a stub `pg`,
checked over plain HTTP with the live tests' stream clients (tests/live/streams.py): a streamed 30 MB upload,
server-sent events, the WebSocket, and how each stream ends when the process gets SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.live.streams import CLOSE, PONG, TEXT, EventStream, HandshakeError, WebSocket, expected_sha256, upload
from tests.stack_config import PROJECT_DIR

SERVER = PROJECT_DIR / "tests/live/apps/node-backend/server.js"
RELEASE = "r-streams"
STUB_PG = """'use strict';
// A stand-in for node-pg: every query answers no rows, and the pool ends at once.
class Pool { query() { return Promise.resolve({ rows: [] }); } end() { return Promise.resolve(); } }
module.exports = { Pool };
"""


class App:
    """server.js on a free port (PORT=0; it logs the one it got), its output collected by a thread."""

    def __init__(self, node: str, tmp_path):
        stub = tmp_path / "node_modules" / "pg"
        stub.mkdir(parents=True)
        (stub / "index.js").write_text(STUB_PG)
        env = {**os.environ, "NODE_PATH": str(tmp_path / "node_modules"), "PORT": "0", "APP_RELEASE": RELEASE,
               "MEDIA_DIR": str(tmp_path)}
        self.proc = subprocess.Popen([node, str(SERVER)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True).start()
        deadline = time.monotonic() + 10
        while not any(line.startswith("listening on ") for line in self.lines):
            assert self.proc.poll() is None and time.monotonic() < deadline, f"server.js did not start: {self.output}"
            time.sleep(0.02)
        port = next(line for line in self.lines if line.startswith("listening on ")).split()[-1]
        self.http, self.ws = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def stop(self) -> float:
        """SIGTERM; the moment it was sent (time.monotonic())."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        return sent


@pytest.fixture
def app(tmp_path):
    node = shutil.which("node")
    if node is None:
        reason = "node is not installed: server.js cannot run here"
        if os.environ.get("CI"):
            pytest.fail(reason)   # CI machines have Node.js
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    running = App(node, tmp_path)
    yield running
    if running.proc.poll() is None:
        running.proc.kill()
    running.proc.wait(5)


def test_a_30_mb_upload_is_hashed_as_it_streams_in(app):
    size = 30 * 1024 * 1024 + 123   # not a whole number of the client's chunks
    assert upload(f"{app.http}/upload", size) == (200, {"bytes": size, "sha256": expected_sha256(size)})
    assert upload(f"{app.http}/upload", 0)[1] == {"bytes": 0, "sha256": expected_sha256(0)}


def test_events_say_hello_then_tick_every_200_ms(app):
    stream = EventStream(f"{app.http}/events", timeout=5)
    try:
        assert stream.status == 200 and stream.headers["Content-Type"] == "text/event-stream"
        assert stream.headers["Cache-Control"] == "no-cache"
        ticks = stream.wait_for("tick", count=3, timeout=5)
        assert [e.event for e in stream.events[:2]] == ["hello", "tick"]
        assert stream.events[0].json() == {"release": RELEASE, "pid": app.proc.pid}
        assert [t.json() for t in ticks[:3]] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert 0.1 < (ticks[2].at - ticks[0].at) / 2 < 1.0   # 200 ms apart, give or take a busy machine
    finally:
        stream.close()
    assert stream.ended == "closed"


def test_the_websocket_says_hello_echoes_text_of_every_length_and_answers_pings(app):
    ws = WebSocket(f"{app.ws}/ws")
    try:
        opcode, hello = ws.recv()
        assert (opcode, hello) == (TEXT, f'{{"hello":"{RELEASE}","pid":{app.proc.pid}}}')
        for text in ("hi", "héllo ✓", "x" * 300, "y" * 70_000):   # 7-bit, 16-bit and 64-bit payload lengths
            ws.send(text)
            assert ws.recv() == (TEXT, f"echo:{text}")
        ws.ping(b"are you there")
        assert ws.recv() == (PONG, b"are you there")
        ws.send_frame(TEXT, b"frag", fin=False)   # a message in two frames is echoed as one
        ws.send_frame(0x0, b"ment")
        assert ws.recv() == (TEXT, "echo:fragment")
    finally:
        ws.close()
    assert (ws.close_code, ws.close_reason) == (1000, "")   # the server echoed our close


def test_bad_frames_and_other_paths_are_refused_and_plain_requests_still_work(app):
    with pytest.raises(HandshakeError) as refused:
        WebSocket(f"{app.ws}/elsewhere")
    assert refused.value.status == 404
    ws = WebSocket(f"{app.ws}/ws")
    ws.recv()
    ws.sock.sendall(b"\x81\x02hi")   # an unmasked client frame
    assert ws.recv()[0] == CLOSE and ws.close_code == 1002
    assert ws.wait_end() == "eof"
    with urllib.request.urlopen(f"{app.http}/request", timeout=5) as response:
        assert response.status == 200


def test_sigterm_says_bye_on_every_stream_ends_them_cleanly_and_exits(app):
    streams = [EventStream(f"{app.http}/events", timeout=5) for _ in range(2)]
    sockets = [WebSocket(f"{app.ws}/ws") for _ in range(2)]
    for stream in streams:
        stream.wait_for("tick")
    for ws in sockets:
        ws.recv()
    sent = app.stop()
    for stream in streams:
        assert stream.wait_ended(5) == "clean", stream.events[-3:]
        assert stream.events[-1].event == "bye" and stream.events[-1].json() == {"release": RELEASE}
    for ws in sockets:
        assert ws.recv(5)[0] == CLOSE and (ws.close_code, ws.close_reason) == (1001, "release ends")
        assert ws.wait_end(5) == "eof"   # after our answering close, not after the 2 s the server allows
    assert app.proc.wait(5) == 0, app.output
    assert time.monotonic() - sent < 1.5 and "SIGTERM: closing" in app.output


def test_a_websocket_client_that_never_answers_the_close_is_dropped_after_2_s(app):
    ws = WebSocket(f"{app.ws}/ws", echo_close=False)
    ws.recv()
    sent = app.stop()
    assert ws.recv(5)[0] == CLOSE and ws.close_code == 1001
    assert ws.wait_end(5) == "eof"
    assert 1.8 < time.monotonic() - sent < 4
    assert app.proc.wait(5) == 0, app.output
