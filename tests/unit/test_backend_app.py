"""The reference backend app: public health answers carry no database error text."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import pytest

from tests.stack_config import PROJECT_DIR

DETAIL = 'FATAL:  Peer authentication failed for user "app" at /var/run/postgresql/.s.PGSQL.5432'


@pytest.fixture
def app(monkeypatch):
    """app.py with a stand-in psycopg2 (the unit venv has no libpq), whose every query fails with DETAIL."""
    fake = types.ModuleType("psycopg2")
    fake.Error = type("Error", (Exception,), {})
    fake.OperationalError = type("OperationalError", (fake.Error,), {})
    fake.InterfaceError = type("InterfaceError", (fake.Error,), {})
    monkeypatch.setitem(sys.modules, "psycopg2", fake)
    spec = importlib.util.spec_from_file_location("webstack_app", PROJECT_DIR / "containers/backend/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def failing(*_args, **_kwargs):
        raise fake.OperationalError(DETAIL)
    monkeypatch.setattr(module.Db, "run", failing)
    return module


@pytest.mark.parametrize("route", ["health_db", "readiness"])
def test_health_answers_do_not_echo_database_errors(app, route):
    status, payload = getattr(app, route)({})
    assert status == 503
    assert "Peer authentication" not in json.dumps(payload) and "s.PGSQL" not in json.dumps(payload)


def test_readiness_does_not_echo_a_failed_migrations_text(app, monkeypatch):
    monkeypatch.setattr(app.Db, "run", lambda sql, params=(), fetch=True: [(False,)] if "to_regclass" in sql else [])
    app.migration_state["error"] = f"migration failed: {DETAIL}"
    status, payload = app.readiness({})
    assert status == 503 and "Peer authentication" not in json.dumps(payload)
