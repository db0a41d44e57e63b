"""supabase/config.toml keeps production-safe Auth settings (`supabase config push` applies them)."""

from __future__ import annotations

import tomllib

from devkit import REPO


def test_auth_defaults_are_safe_for_production() -> None:
    auth = tomllib.loads((REPO / "supabase" / "config.toml").read_text())["auth"]
    email = auth["email"]
    assert email["enable_confirmations"] is True, "unconfirmed sign-ups let anyone mint accounts"
    assert email["secure_password_change"] is True
    assert auth["enable_anonymous_sign_ins"] is False
    assert auth["minimum_password_length"] >= 8
    assert auth["password_requirements"] != ""
    assert auth["enable_refresh_token_rotation"] is True
    assert auth["jwt_expiry"] <= 3600
