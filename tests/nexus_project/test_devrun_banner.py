"""`make run`'s banner points at `make superuser` only while there is no superuser to log in with."""

from __future__ import annotations

import sqlite3

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from nexus_project.devrun import admin_line, superuser_exists


def conninfo() -> str:
    params = connection.get_connection_params()
    keys = {"host": "host", "port": "port", "user": "user", "password": "password", "dbname": "dbname"}
    return " ".join(f"{key}={params[name]}" for key, name in keys.items() if params.get(name))


@pytest.mark.django_db(transaction=True)
def test_superuser_is_seen_in_postgresql_once_created():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (the session's own, or DATABASE_URL)")
    assert superuser_exists(conninfo()) is False
    get_user_model().objects.create_user("staff-only", password="pw", is_staff=True)
    assert superuser_exists(conninfo()) is False
    get_user_model().objects.create_superuser("admin", "admin@example.test", "pw")
    assert superuser_exists(conninfo()) is True


def test_superuser_in_sqlite_and_an_unreadable_database(tmp_path):
    path = tmp_path / "dev.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE auth_user (is_superuser bool, is_active bool)")
        db.execute("INSERT INTO auth_user VALUES (1, 1)")
    assert superuser_exists(f"sqlite:///{path}") is True
    assert superuser_exists(f"sqlite:///{tmp_path / 'empty.sqlite3'}") is None  # not migrated


def test_the_hint_is_given_only_without_a_superuser():
    assert "make superuser" in admin_line("http://127.0.0.1:8000", False)
    assert "make superuser" in admin_line("http://127.0.0.1:8000", None)
    assert admin_line("http://127.0.0.1:8000", True).rstrip().endswith("/admin/")
