"""The load generator the zero-downtime scenarios count on: outcomes by kind, and only allowed targets."""

from __future__ import annotations

import http.server
import threading

import pytest

from tests.live.loadgen import run_load


def test_the_load_generator_counts_outcomes_by_kind_and_refuses_other_hosts():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response({"/ok": 200, "/moved": 308}.get(self.path, 503))
            self.send_header("Location", "http://192.0.2.1/")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        ok = run_load(f"{base}/ok", rps=40, seconds=1)
        assert ok.total >= 35 and ok.ok == ok.total
        moved = run_load(f"{base}/moved", rps=20, seconds=10, max_requests=5)
        assert (moved.total, moved.ok) == (5, 5)   # 3xx is success, and the redirect is not followed
        failing = run_load(f"{base}/down", rps=20, seconds=0.5)
        assert failing.failures_by_kind == {"http_503": failing.total}
    finally:
        server.shutdown()
    with pytest.raises(ValueError, match="refusing"):
        run_load("http://192.0.2.1/", rps=1, seconds=1)
