"""A fault hook shared by this review's proofs and probes."""

from __future__ import annotations

import threading

from lizzy.dynamodb.capacity import write_units_of
from tests.fixtures.dynamodb_hooks import client_error


def pk_of(request):
    return request["PutRequest"]["Item"]["PK"]["S"]


class Faults:
    """BatchWriteItem carrying ``refuse_pk``: refused (ValidationException) every time. PutItem of a PK in
    ``throttle_puts``: throttled (one answer each, removed once thrown). PutItem of ``refuse_put``: refused.
    The chunk carrying ``stingy_pk``: one item a call for ``stingy`` calls. Every call DynamoDB answered with
    capacity is recorded, and every throttled / left-over answer counted."""

    def __init__(self, *, refuse_pk=None, throttle_puts=(), refuse_put=None, stingy_pk=None, stingy=0):
        self.refuse_pk, self.throttle_puts, self.refuse_put = refuse_pk, set(throttle_puts), refuse_put
        self.stingy_pk, self.stingy = stingy_pk, stingy
        self.units: list[float] = []
        self.throttled = self.unprocessed = 0
        self.lock = threading.Lock()

    def __call__(self, operation, params, send):
        if operation not in ("BatchWriteItem", "PutItem"):
            return send(params)
        unprocessed = []
        if operation == "BatchWriteItem":
            ((table, requests),) = params["RequestItems"].items()
            pks = [pk_of(r) for r in requests]
            if self.refuse_pk in pks:
                raise client_error("ValidationException", "One or more parameter values were invalid", operation)
            with self.lock:
                stingy = self.stingy_pk in pks and self.stingy > 0
                if stingy:
                    self.stingy -= 1
            if stingy and len(requests) > 1:
                params = {**params, "RequestItems": {table: requests[-1:]}}
                unprocessed = requests[:-1]
        else:
            table, pk = params["TableName"], params["Item"]["PK"]["S"]
            with self.lock:
                throttle = pk in self.throttle_puts
                if throttle:
                    self.throttle_puts.discard(pk)
                    self.throttled += 1
            if throttle:
                raise client_error("ProvisionedThroughputExceededException", "slow down", operation)
            if pk == self.refuse_put:
                raise client_error("ValidationException", "Item size has exceeded the maximum allowed", operation)
        response = send(params)
        with self.lock:
            self.units.append(write_units_of(operation, response.get("ConsumedCapacity"), table=table))
            if unprocessed:
                self.unprocessed += 1
                response = {**response, "UnprocessedItems": {table: unprocessed}}
        return response
