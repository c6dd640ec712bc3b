"""webstack's reference API: a stdlib WSGI app on PostgreSQL over its Unix socket (peer auth, no password).

libpq reads PGHOST, PGDATABASE and PGUSER from the environment. The edge strips the /api prefix, so routes
here are bare paths. Migrations in migrations/NNNN_name.sql are applied at startup by a background thread of
every worker; a session advisory lock serializes them across workers and containers.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path

import psycopg2

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MIGRATION_LOCK = 7_270_001        # arbitrary, constant key of pg_advisory_lock
RETRY_SECONDS = 2
MAX_BODY = 16 * 1024
MAX_TEXT = 1000

log = logging.getLogger("webstack.backend")
logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(process)d] %(levelname)s %(message)s")

# What this worker's migration thread last saw; /readiness reports it when migrations are not all applied.
migration_state = {"error": None}


def connect(statement_timeout_ms: int = 5000):
    # Connection parameters come from PG* variables; the timeouts keep requests from hanging on a stuck db.
    return psycopg2.connect("", connect_timeout=3, options=f"-c statement_timeout={statement_timeout_ms}",
                            application_name="webstack-backend")


class Db:
    """One connection per worker process, reopened after any failure (sync workers serve one request at a time)."""

    conn = None

    @classmethod
    def run(cls, sql: str, params: tuple = (), fetch: bool = True):
        for attempt in (1, 2):    # a connection dropped by a db restart is retried once on a fresh one
            try:
                if cls.conn is None or cls.conn.closed:
                    cls.conn = connect()
                with cls.conn, cls.conn.cursor() as cursor:
                    cursor.execute(sql, params)
                    return cursor.fetchall() if fetch else None
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                cls.close()
                if attempt == 2:
                    raise

    @classmethod
    def close(cls):
        if cls.conn is not None:
            try:
                cls.conn.close()
            except psycopg2.Error:
                pass
        cls.conn = None


# --- migrations ---------------------------------------------------------------------------------------------

def migration_files() -> list[tuple[int, str, Path]]:
    found = {}
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = MIGRATION_FILE.match(path.name)
        if not match:
            raise RuntimeError(f"migration file {path.name} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations have version {version}: {found[version][1]} and {path.stem}")
        found[version] = (version, path.stem, path)
    return [found[v] for v in sorted(found)]


def apply_migrations(conn) -> int:
    """Apply what schema_migrations lacks, each file in its own transaction. Returns how many were applied."""
    conn.autocommit = True
    applied_now = 0
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))   # waits while another process migrates
        try:
            cursor.execute("CREATE TABLE IF NOT EXISTS schema_migrations ("
                           "version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            cursor.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in cursor.fetchall()}
            for version, name, path in migration_files():
                if version in done:
                    continue
                conn.autocommit = False
                try:
                    with conn:     # commits on success, rolls back on any exception
                        cursor.execute(path.read_text())
                        cursor.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                finally:
                    conn.autocommit = True
                log.info("migration %s applied", name)
                applied_now += 1
        finally:
            if not conn.closed:
                cursor.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    return applied_now


def migrate_forever() -> None:
    """Retry every RETRY_SECONDS until the database answers; stop after success or a failing migration."""
    waiting_logged = False
    while True:
        try:
            conn = connect(statement_timeout_ms=0)    # a migration may legitimately run long
        except psycopg2.OperationalError as exc:
            migration_state["error"] = f"database unreachable: {str(exc).strip()}"
            if not waiting_logged:
                log.warning("waiting for the database: %s", str(exc).strip())
                waiting_logged = True
            time.sleep(RETRY_SECONDS)
            continue
        try:
            apply_migrations(conn)
            migration_state["error"] = None
            return
        except Exception as exc:
            if conn.closed:     # the database went away mid-way: the transaction rolled back, try again
                migration_state["error"] = f"database connection lost: {str(exc).strip()}"
                time.sleep(RETRY_SECONDS)
                continue
            # A broken migration will not heal by itself: /readiness stays 503 until a fixed release.
            migration_state["error"] = f"migration failed: {str(exc).strip()}"
            log.error("migration failed, /readiness stays 503 until a fixed release: %s", exc)
            return
        finally:
            conn.close()


def start_migrations() -> threading.Thread:
    thread = threading.Thread(target=migrate_forever, name="migrations", daemon=True)
    thread.start()
    return thread


# --- HTTP ---------------------------------------------------------------------------------------------------

class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


STATUS_TEXT = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
               413: "Payload Too Large", 415: "Unsupported Media Type", 500: "Internal Server Error",
               503: "Service Unavailable"}


def health(_environ):
    return 200, {"status": "ok"}


# Health answers are public (the edge serves /api/*): they give a generic reason; the detail goes to the log.
def unavailable(reason: str, detail: object, **extra) -> tuple[int, dict]:
    log.warning("%s: %s", reason, str(detail).strip())
    return 503, {"status": "unavailable", "reason": reason, **extra}


def health_db(_environ):
    try:
        Db.run("SELECT 1")
    except psycopg2.Error as exc:
        return unavailable("database unreachable", exc)
    return 200, {"status": "ok"}


def readiness(_environ):
    try:
        exists = Db.run("SELECT to_regclass('schema_migrations') IS NOT NULL")[0][0]
        rows = Db.run("SELECT version FROM schema_migrations") if exists else []
    except psycopg2.Error as exc:
        return unavailable("database unreachable", exc)
    applied = {row[0] for row in rows}
    try:
        pending = [name for version, name, _ in migration_files() if version not in applied]
    except RuntimeError as exc:
        return unavailable("invalid migration files", exc)
    if pending:
        error = migration_state["error"]
        # Only the kind of failure ("migration failed", ...), never the database's own text.
        reason = error.split(":", 1)[0] if error else "migrations pending"
        return unavailable(reason, error or "migrations pending", pending=pending)
    return 200, {"status": "ready"}


def note_json(row) -> dict:
    return {"id": row[0], "text": row[1], "created_at": row[2].isoformat()}


def list_notes(_environ):
    rows = Db.run("SELECT id, text, created_at FROM notes ORDER BY created_at DESC, id DESC LIMIT 100")
    return 200, [note_json(row) for row in rows]


def read_json(environ):
    if environ.get("CONTENT_TYPE", "").split(";")[0].strip() != "application/json":
        raise HttpError(415, "send Content-Type: application/json")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HttpError(400, "invalid Content-Length") from None
    if length > MAX_BODY:
        raise HttpError(413, f"the body is larger than {MAX_BODY} bytes")
    try:
        return json.loads(environ["wsgi.input"].read(length) or b"null")
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "the body is not valid JSON") from None


def add_note(environ):
    body = read_json(environ)
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str):
        raise HttpError(400, 'expected a JSON object {"text": "..."}')
    text = text.strip()
    if not 1 <= len(text) <= MAX_TEXT:
        raise HttpError(400, f"text must be 1 to {MAX_TEXT} characters")
    rows = Db.run("INSERT INTO notes (text) VALUES (%s) RETURNING id, text, created_at", (text,))
    return 201, note_json(rows[0])


ROUTES = {
    "/health": {"GET": health},
    "/health/db": {"GET": health_db},
    "/readiness": {"GET": readiness},
    "/notes": {"GET": list_notes, "POST": add_note},
}


def application(environ, start_response):
    path = environ.get("PATH_INFO") or "/"
    methods = ROUTES.get(path.rstrip("/") or "/")
    extra_headers = []
    try:
        if methods is None:
            raise HttpError(404, "not found")
        method = environ["REQUEST_METHOD"]
        handler = methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            extra_headers.append(("Allow", ", ".join(sorted(methods))))
            raise HttpError(405, f"{method} is not allowed here")
        status, payload = handler(environ)
    except HttpError as exc:
        status, payload = exc.status, {"error": str(exc)}
    except psycopg2.Error as exc:
        log.warning("%s %s: database error: %s", environ.get("REQUEST_METHOD"), path, str(exc).strip())
        status, payload = 503, {"error": "the database is unavailable"}
    except Exception:
        log.exception("%s %s failed", environ.get("REQUEST_METHOD"), path)
        status, payload = 500, {"error": "internal error"}
    body = json.dumps(payload).encode()
    start_response(f"{status} {STATUS_TEXT.get(status, '')}", [
        # No Cache-Control here: the edge adds it to every /api response, and two would contradict each other.
        ("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra_headers])
    return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]
