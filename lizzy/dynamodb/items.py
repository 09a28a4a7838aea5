"""The item verbs (get, put, update, delete, query, scan) and paging cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lizzy.dynamodb import client
from lizzy.dynamodb.capacity import write_units_of
from lizzy.dynamodb.codec import deserialize_item, serialize_checked, serialize_item, serialize_value
from lizzy.errors import ValidationFailed


def _expression_kwargs(names: Mapping[str, str] | None, values: Mapping[str, Any] | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if names:
        kwargs["ExpressionAttributeNames"] = dict(names)
    if values:
        kwargs["ExpressionAttributeValues"] = {k: serialize_value(v, k) for k, v in values.items()}
    return kwargs


def dynamodb_get_item(*, table: str, key: Mapping[str, Any], consistent: bool = False) -> dict[str, Any] | None:
    response = client._call("GetItem", table=table, TableName=table, Key=serialize_item(key), ConsistentRead=consistent)
    item = response.get("Item")
    return deserialize_item(item) if item else None


def dynamodb_put_item(
    *,
    table: str,
    item: Mapping[str, Any],
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> float:
    """PutItem; the size is checked first, so an oversize item never reaches the wire. Returns the write
    units DynamoDB reported for it (0 where the endpoint reports none)."""
    wire, _size = serialize_checked(item)
    params: dict[str, Any] = {"TableName": table, "Item": wire, **_expression_kwargs(names, values)}
    if condition:
        params["ConditionExpression"] = condition
    response = client._call("PutItem", table=table, **params)
    return write_units_of("PutItem", (response or {}).get("ConsumedCapacity"), table=table)


def dynamodb_update_item(
    *,
    table: str,
    key: Mapping[str, Any],
    update: str,
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    return_values: str = "ALL_NEW",
) -> dict[str, Any] | None:
    params: dict[str, Any] = {
        "TableName": table,
        "Key": serialize_item(key),
        "UpdateExpression": update,
        "ReturnValues": return_values,
        **_expression_kwargs(names, values),
    }
    if condition:
        params["ConditionExpression"] = condition
    response = client._call("UpdateItem", table=table, **params)
    attributes = response.get("Attributes")
    return deserialize_item(attributes) if attributes else None


def dynamodb_delete_item(
    *,
    table: str,
    key: Mapping[str, Any],
    condition: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    return_values: str | None = None,
) -> dict[str, Any] | None:
    """DeleteItem; with ``return_values="ALL_OLD"`` the deleted item (None when there was none)."""
    params: dict[str, Any] = {"TableName": table, "Key": serialize_item(key), **_expression_kwargs(names, values)}
    if condition:
        params["ConditionExpression"] = condition
    if return_values:
        params["ReturnValues"] = return_values
    response = client._call("DeleteItem", table=table, **params)
    attributes = response.get("Attributes")
    return deserialize_item(attributes) if attributes else None


@dataclass
class Page:
    items: list[dict[str, Any]]
    last_key: dict[str, Any] | None
    scanned: int = 0


def _page(response: dict[str, Any]) -> Page:
    last = response.get("LastEvaluatedKey")
    return Page(
        items=[deserialize_item(item) for item in response.get("Items", [])],
        last_key=deserialize_item(last) if last else None,
        scanned=response.get("ScannedCount", 0),
    )


def dynamodb_query(
    *,
    table: str,
    key_condition: str,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    index: str | None = None,
    filter_expression: str | None = None,
    limit: int | None = None,
    forward: bool = True,
    start_key: Mapping[str, Any] | None = None,
    consistent: bool = False,
) -> Page:
    params: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": key_condition,
        "ScanIndexForward": forward,
        **_expression_kwargs(names, values),
    }
    if index:
        params["IndexName"] = index
    else:
        params["ConsistentRead"] = consistent
    if filter_expression:
        params["FilterExpression"] = filter_expression
    if limit:
        params["Limit"] = limit
    if start_key:
        params["ExclusiveStartKey"] = serialize_item(start_key)
    return _page(client._call("Query", table=table, **params))


def dynamodb_scan(
    *,
    table: str,
    filter_expression: str | None = None,
    names: Mapping[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    limit: int | None = None,
    start_key: Mapping[str, Any] | None = None,
    segment: int | None = None,
    total_segments: int | None = None,
    consistent: bool = False,
    profile: str = "default",
) -> Page:
    params: dict[str, Any] = {"TableName": table, "ConsistentRead": consistent, **_expression_kwargs(names, values)}
    if filter_expression:
        params["FilterExpression"] = filter_expression
    if limit:
        params["Limit"] = limit
    if start_key:
        params["ExclusiveStartKey"] = serialize_item(start_key)
    if total_segments:
        params["Segment"] = segment or 0
        params["TotalSegments"] = total_segments
    return _page(client._call("Scan", table=table, profile=profile, **params))


def dynamodb_scan_segment(
    *, table: str, segment: int = 0, total_segments: int = 1, page_size: int | None = None, **kwargs: Any
) -> Iterator[dict[str, Any]]:
    """Every item of one Scan segment, page by page (each segment pages with its own key)."""
    start_key = None
    while True:
        page = dynamodb_scan(
            table=table,
            segment=segment if total_segments > 1 else None,
            total_segments=total_segments if total_segments > 1 else None,
            start_key=start_key,
            limit=page_size,
            **kwargs,
        )
        yield from page.items
        if not page.last_key:
            return
        start_key = page.last_key


def dynamodb_parallel_scan(
    *, table: str, total_segments: int = 4, consume: Callable[[list[dict[str, Any]]], None], **kwargs: Any
) -> int:
    """Parallel Scan (Segment/TotalSegments): ``consume`` gets each page's items; returns the item count.

    ``consume`` is called from several threads at once and must be thread-safe.
    """

    def run(segment: int) -> int:
        count = 0
        start_key = None
        while True:
            page = dynamodb_scan(
                table=table,
                segment=segment if total_segments > 1 else None,
                total_segments=total_segments if total_segments > 1 else None,
                start_key=start_key,
                **kwargs,
            )
            consume(page.items)
            count += len(page.items)
            if not page.last_key:
                return count
            start_key = page.last_key

    if total_segments <= 1:
        return run(0)
    with ThreadPoolExecutor(max_workers=total_segments, thread_name_prefix="scan") as pool:
        return sum(pool.map(run, range(total_segments)))


def encode_cursor(last_key: Mapping[str, Any] | None) -> str | None:
    """An opaque, URL-safe cursor for a LastEvaluatedKey."""
    if not last_key:
        return None
    raw = json.dumps(serialize_item(last_key), sort_keys=True, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return deserialize_item(json.loads(raw))
    except (ValueError, TypeError, AttributeError, ArithmeticError) as exc:
        raise ValidationFailed("The cursor is not one this API issued.", details={"cursor": cursor}) from exc
