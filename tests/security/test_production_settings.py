"""Production settings: the webhook signature is required, transport and cookies are secure, and no
secret has a default in code (``check --deploy`` itself: tests/lizzy/test_settings.py)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from tests.lizzy.test_settings import ROOT, run_manage

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "lizzy.settings.production",
    "DJANGO_SECRET_KEY": "x" * 20 + "a-long-random-production-secret-key-with-entropy-0123456789",
    "DJANGO_ALLOWED_HOSTS": "lizzy.example.com",
    "TWILIO_AUTH_TOKEN": "test-token-from-the-environment",
}
SECRET_NAMES = ("SECRET", "TOKEN", "PASSWORD", "PRIVATE", "CREDENTIAL")

DUMP = (
    "import json; from django.conf import settings as s; print(json.dumps({n: getattr(s, n) for n in ["
    "'DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_HSTS_SECONDS', 'SECURE_SSL_REDIRECT',"
    "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SESSION_COOKIE_HTTPONLY', 'TWILIO_AUTH_TOKEN', 'SECURE_PROXY_SSL_HEADER']}))"
)


def test_production_refuses_to_start_without_the_webhook_token():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "TWILIO_AUTH_TOKEN"}
    result = run_manage("check", **env)
    assert result.returncode != 0
    assert "Set the TWILIO_AUTH_TOKEN environment variable." in result.stderr


def test_production_cookies_and_transport_are_secure():
    result = run_manage("shell", "-c", DUMP, **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["TWILIO_AUTH_TOKEN"] == PRODUCTION_ENV["TWILIO_AUTH_TOKEN"]  # from the environment


def _literal_secrets(path: Path) -> list[str]:
    """Assignments of a string literal (or an env default that is a literal) to a secret-looking name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Assign):
            continue
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if not any(part in name.upper() for name in names for part in SECRET_NAMES):
            continue
        value = node.value
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.append(f"{path.name}:{node.lineno} {names[0]}")
        if isinstance(value, ast.Call):
            for keyword in value.keywords:
                if keyword.arg == "default" and isinstance(keyword.value, ast.Constant) and keyword.value.value:
                    found.append(f"{path.name}:{node.lineno} {names[0]} (env default)")
    return found


def test_production_and_base_settings_take_secrets_only_from_the_environment():
    settings_dir = ROOT / "lizzy" / "settings"
    found = _literal_secrets(settings_dir / "base.py") + _literal_secrets(settings_dir / "production.py")
    assert found == []


def test_the_secret_scan_finds_a_literal_secret(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('SECRET_KEY = "oops"\nAPI_TOKEN = env("API_TOKEN", default="dev-token")\nDEBUG = False\n')
    assert _literal_secrets(sample) == ["sample.py:1 SECRET_KEY", "sample.py:2 API_TOKEN (env default)"]
