"""Email-derived keys are keyed HMACs: a bare hash of an email address is reversed by hashing guesses.

Every plan shipped in migration_app/plans is scanned: a template that hashes an email-looking column
must use ``hmac_sha256`` (keyed by LIZZY_MAPPING_HMAC_KEY), never ``sha256``. And the Serenya key itself
cannot be recomputed from the address without the key.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from migration_app.services.templates import Template

PLANS = Path(__file__).resolve().parents[2] / "migration_app" / "plans"


def _templates(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _templates(value)
    elif isinstance(node, list):
        for value in node:
            yield from _templates(value)
    elif isinstance(node, str) and "${" in node:
        yield node


def test_every_hashed_email_in_the_shipped_plans_uses_a_keyed_hmac():
    mappings = sorted(PLANS.glob("*/mapping.json"))
    assert mappings, "no plans found to scan"
    hashed = []
    for path in mappings:
        for template in _templates(json.loads(path.read_text())):
            for expression in re.findall(r"\$\{([^}]*)\}", template):
                if "email" in expression and "sha256" in expression:
                    hashed.append((path.parent.name, expression))
    assert hashed, "the Serenya plan's email key was not found: the scan is not looking at the right files"
    assert all(expression.startswith("hmac_sha256(") for _plan, expression in hashed), hashed


def test_the_email_key_cannot_be_recomputed_without_the_secret(settings):
    settings.LIZZY_MAPPING_HMAC_KEY = "secret-one"  # noqa: S105 - a test value
    template = Template.parse("USER_EMAIL#${hmac_sha256(lower(trim(email)))}")
    key = template.render({"email": " Jordan.Rivera@Example.com "})
    guess = "USER_EMAIL#" + hashlib.sha256(b"jordan.rivera@example.com").hexdigest()
    assert key != guess  # hashing a guessed address does not find it
    settings.LIZZY_MAPPING_HMAC_KEY = "secret-two"  # noqa: S105
    assert template.render({"email": " Jordan.Rivera@Example.com "}) != key  # the key is what protects it
