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


def test_serve_refuses_to_start_without_an_admin_password_when_not_at_a_terminal(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("SHOPFUNNEL_ADMIN_PASSWORD", raising=False)
    result = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 1 and "SHOPFUNNEL_ADMIN_PASSWORD" in result.output


def test_a_short_admin_password_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPFUNNEL_ADMIN_PASSWORD", "short")
    result = CliRunner().invoke(app, ["serve", "--db", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 1 and "too short" in result.output


def test_platform_secrets_are_kept_listed_by_fingerprint_and_removed(tmp_path):
    db = str(tmp_path / "s.duckdb")
    runner = CliRunner()
    kept = runner.invoke(
        app,
        ["keys", "platform-secret", "shopify", "--db", db, "--secret-env", "SHOP"],
        env={"SHOP": "shpss_test_client_secret"},
    )
    assert kept.exit_code == 0, kept.output
    made = runner.invoke(
        app,
        ["keys", "platform-secret", "woocommerce", "--db", db, "--generate", "--name", "orders"],
    )
    woo_secret = made.stdout.strip().splitlines()[-1]
    assert len(woo_secret) >= 40
    with Store(db) as store:
        assert auth.platform_secrets(store.db) == {
            "woocommerce": [woo_secret],
            "shopify": ["shpss_test_client_secret"],
        }
    listed = runner.invoke(app, ["keys", "platform-secrets", "--db", db, "--format", "csv"])
    assert (
        "shopify" in listed.output
        and "shpss_test" not in listed.output
        and woo_secret not in listed.output
    )
    assert (
        runner.invoke(
            app, ["keys", "remove-platform-secret", "woocommerce", "--name", "orders", "--db", db]
        ).exit_code
        == 0
    )
    with Store(db) as store:
        assert auth.platform_secrets(store.db)["woocommerce"] == []
    wrong = runner.invoke(app, ["keys", "platform-secret", "magento", "--db", db, "--generate"])
    assert wrong.exit_code == 1 and "woocommerce or shopify" in wrong.output
