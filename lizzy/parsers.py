"""The REST API's JSON parser, limited to DynamoDB's nesting depth.

DynamoDB stores nested attributes up to 32 levels deep; a deeper body could never be stored, and one
deep enough overflows Python's recursion (a 500). Both are a 400 naming the limit, before anything is
read or written.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_JSON_DEPTH = 32  # DynamoDB's limit for nested attributes
ERR_TOO_DEEP = f"The JSON body is nested deeper than {MAX_JSON_DEPTH} levels, DynamoDB's limit."


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value: a scalar is 0, ``{}`` and ``[]`` are 1. Iterative."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            return depth  # no need to look further
        stack.extend((child, depth + 1) for child in children)
    return deepest


class DepthLimitedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise ParseError(ERR_TOO_DEEP) from exc
        if json_depth(data) > MAX_JSON_DEPTH:
            raise ParseError(ERR_TOO_DEEP)
        return data
