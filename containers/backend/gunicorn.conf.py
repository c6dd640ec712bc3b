"""Gunicorn settings of the reference backend (read with `gunicorn --config /app/gunicorn.conf.py`)."""

import os


def _workers() -> int:
    override = os.environ.get("WEB_CONCURRENCY", "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise SystemExit(f"WEB_CONCURRENCY={override!r} must be a positive integer")
        return int(override)
    # CPUs this process may run on (respects cpusets), the usual 2n+1, capped: each worker holds a DB connection.
    return min(2 * len(os.sched_getaffinity(0)) + 1, 8)


_port = os.environ.get("PORT", "8000")
if not _port.isdigit():
    raise SystemExit(f"PORT={_port!r} must be a port number")

bind = f"0.0.0.0:{_port}"
workers = _workers()
worker_tmp_dir = "/tmp"      # the root filesystem is read-only; /tmp is a tmpfs
graceful_timeout = 30        # on SIGTERM, workers finish in-flight requests for up to 30 s
timeout = 60
accesslog = "-"              # stdout, collected by Docker
errorlog = "-"


def post_worker_init(worker):
    # Each worker applies pending migrations in the background; an advisory lock makes the work happen once.
    import app

    app.start_migrations()
