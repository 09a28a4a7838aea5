"""Change data capture from PostgreSQL (logical decoding, ``pgoutput``) into DynamoDB.

The pipeline beside the backfill's: ``slots`` (the source: publication, slot, peek, advance, lag),
``pgoutput`` (messages → transactions), ``apply`` (changes → items with the plan's mapping → writes),
``worker`` (the leased loop), ``streams`` (create and drop, consistency with the backfill), ``hooks``
(what the phase machine calls) and ``observability`` (gauges on /metrics, alarms).
"""
