"""`shopfunnel keys` manages write keys; only their hashes are stored."""

from __future__ import annotations

from typer.testing import CliRunner

from shopfunnel.cli import app
from shopfunnel.server import auth
from shopfunnel.store.store import Store


def test_keys_are_created_listed_and_revoked_and_stored_hashed(tmp_path):
    db = str(tmp_path / "s.duckdb")
    runner = CliRunner()
    created = runner.invoke(app, ["keys", "create", "--db", db, "--name", "web"])
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    assert key.startswith(auth.KEY_PREFIX) and len(key) > 40
    listed = runner.invoke(app, ["keys", "list", "--db", db, "--format", "csv"])
    assert key[:10] in listed.output and key not in listed.output and "web" in listed.output
    with Store(db) as store:
        assert auth.active_key_digests(store.db) == {auth.key_digest(key): "web"}
    assert runner.invoke(app, ["keys", "revoke", key[:10], "--db", db]).exit_code == 0
    with Store(db) as store:
        assert auth.active_key_digests(store.db) == {}
    unknown = runner.invoke(app, ["keys", "revoke", "sfk_nope", "--db", db])
    assert unknown.exit_code == 1 and "keys list" in unknown.output


def test_serve_refuses_to_start_without_an_admin_password_when_not_at_a_terminal(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPFUNNEL_ADMIN_PASSWORD", raising=False)
    result = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 1 and "SHOPFUNNEL_ADMIN_PASSWORD" in result.output


def test_a_short_admin_password_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFUNNEL_ADMIN_PASSWORD", "short")
    result = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 1 and "too short" in result.output
