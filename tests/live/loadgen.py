"""A bounded HTTP load generator for zero-downtime checks: N requests per second, counted by outcome.

Only loopback targets (127.0.0.0/8, ::1, localhost) or addresses the caller explicitly allows: tests must not
send traffic anywhere else. It always stops by itself (after `seconds`, or max_requests).

    python -m tests.live.loadgen https://localhost:8443/ --rps 50 --seconds 20
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Optional
from urllib.parse import urlsplit


@dataclass
class LoadReport:
    total: int = 0
    ok: int = 0
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    # When failures happened (monotonic seconds) and, per HTTP status, the Retry-After values answered with it.
    first_failure: Optional[float] = None
    last_failure: Optional[float] = None
    retry_after: dict[str, set] = field(default_factory=dict)

    @property
    def failure_window(self) -> float:
        """Seconds from the first failure to the last: how long the service paused."""
        return (self.last_failure - self.first_failure) if self.first_failure is not None else 0.0

    @property
    def failed(self) -> int:
        return self.total - self.ok

    def __str__(self) -> str:
        rate = self.total / self.seconds if self.seconds else 0.0
        return (f"{self.total} requests in {self.seconds:.1f}s ({rate:.1f}/s): {self.ok} ok, {self.failed} failed"
                + (f" {dict(sorted(self.failures_by_kind.items()))}" if self.failures_by_kind else ""))


@dataclass
class LoadSummary:
    total: int
    failed: int
    detail: str   # one report per load


def stop_all(loads: Iterable["Load"], tail: float = 2.0) -> LoadSummary:
    """Stop loads after a short tail (requests just after an update still count) and sum their reports."""
    time.sleep(tail)
    reports = [load.stop() for load in loads]
    return LoadSummary(sum(r.total for r in reports), sum(r.failed for r in reports), "; ".join(map(str, reports)))


def check_target(url: str, allowed_hosts: Iterable[str] = ()) -> None:
    """Refuse any target but loopback or an explicitly allowed test host."""
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host in set(allowed_hosts):
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"refusing to send load to {host!r}: only loopback or explicitly allowed test hosts")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx counts as success and is not followed: a redirect must not lead the load to another host."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _kind(exc: BaseException) -> Optional[str]:
    if isinstance(exc, urllib.error.HTTPError):
        return None if exc.code < 400 else f"http_{exc.code}"
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(reason, (ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        return "connection_reset"
    if isinstance(reason, ssl.SSLError):
        return "tls_error"
    return f"error_{type(reason).__name__}"


class Load:
    """Background load: start(), then stop() for the report. Never runs longer than max_seconds."""

    def __init__(self, url: str, rps: float, max_seconds: float, verify_tls: bool = False,
                 max_requests: Optional[int] = None, allowed_hosts: Iterable[str] = (), timeout: float = 5.0,
                 host_header: Optional[str] = None):
        """host_header: the name asked for when the URL has an address (the edge answers only its domain)."""
        check_target(url, allowed_hosts)
        self.headers = {"Host": host_header} if host_header else {}
        self.url, self.rps, self.max_seconds, self.max_requests, self.timeout = url, rps, max_seconds, max_requests, timeout
        self._ssl = ssl.create_default_context() if verify_tls else ssl._create_unverified_context()
        self._opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self._ssl), _NoRedirect)
        self._report, self._lock, self._stop = LoadReport(), threading.Lock(), threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max(4, min(128, int(rps * timeout))), thread_name_prefix="load")
        self._thread = threading.Thread(target=self._schedule, daemon=True)

    def _one(self) -> None:
        kind = None
        try:
            request = urllib.request.Request(self.url, headers=self.headers)
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
                if response.status >= 400:
                    kind = f"http_{response.status}"
        except Exception as exc:  # noqa: BLE001 - every failure is counted by its kind
            kind = _kind(exc)
            if kind and isinstance(exc, urllib.error.HTTPError):
                with self._lock:
                    self._report.retry_after.setdefault(kind, set()).add(exc.headers.get("Retry-After"))
        with self._lock:
            self._report.total += 1
            if kind is None:
                self._report.ok += 1
            else:
                self._report.failures_by_kind[kind] = self._report.failures_by_kind.get(kind, 0) + 1
                now = time.monotonic()
                self._report.first_failure = self._report.first_failure or now
                self._report.last_failure = now

    def _schedule(self) -> None:
        started, sent = time.monotonic(), 0
        while not self._stop.is_set() and time.monotonic() - started < self.max_seconds:
            if self.max_requests is not None and sent >= self.max_requests:
                break
            self._pool.submit(self._one)
            sent += 1
            self._stop.wait(max(0.0, started + sent / self.rps - time.monotonic()))
        self._report.seconds = time.monotonic() - started

    def start(self) -> "Load":
        self._thread.start()
        return self

    def stop(self) -> LoadReport:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        return self._report

    def __enter__(self) -> "Load":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_load(url: str, rps: float, seconds: float, verify_tls: bool = False, max_requests: Optional[int] = None,
             allowed_hosts: Iterable[str] = ()) -> LoadReport:
    """Send `rps` requests per second for `seconds` (or until max_requests) and report the outcomes."""
    load = Load(url, rps, seconds, verify_tls, max_requests, allowed_hosts).start()
    load._thread.join()
    return load.stop()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--rps", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--max-requests", type=int)
    parser.add_argument("--verify-tls", action="store_true")
    parser.add_argument("--allow-host", action="append", default=[], help="a test host besides loopback")
    args = parser.parse_args(argv)
    report = run_load(args.url, args.rps, args.seconds, args.verify_tls, args.max_requests, args.allow_host)
    print(report)
    return 0 if report.failed == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
