"""docs/iam-policy.json is exactly the DynamoDB actions the code calls: nothing missing, nothing extra."""

import ast
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE_DIRS = ("lizzy", "sessions_app", "migration_app")
# Actions the API performs implicitly on behalf of another call (CreateTable with Tags).
IMPLIED = {"TagResource"}


def code_operations() -> set[str]:
    operations = set()
    for directory in CODE_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", None)) == "_call"
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                ):
                    operations.add(node.args[0].value)
    return operations


def policy_actions() -> set[str]:
    policy = json.loads((ROOT / "docs" / "iam-policy.json").read_text())
    actions = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions.update(listed if isinstance(listed, list) else [listed])
    return actions


def test_every_dynamodb_call_is_allowed_and_nothing_else_is():
    called = {f"dynamodb:{op}" for op in code_operations() | IMPLIED}
    allowed = policy_actions()
    assert called - allowed == set(), "code calls actions the policy does not allow"
    assert allowed - called == set(), "policy allows actions the code never calls"


def test_no_wildcard_actions():
    assert not any("*" in action for action in policy_actions())
