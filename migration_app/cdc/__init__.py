"""Change data capture into DynamoDB: from PostgreSQL (logical decoding, ``pgoutput``) and MySQL/MariaDB (the
row-based binlog).

The pipeline beside the backfill's: ``slots`` (PostgreSQL: publication, slot, peek, advance, lag),
``pgoutput`` (messages → transactions), ``binlog`` (MySQL/MariaDB: binlog events → the same transactions,
file:position, lag), ``capture`` (which of the two a stream uses), ``apply`` (changes → items with the
plan's mapping → writes), ``worker`` (the leased loop, one for both), ``streams`` (create and drop,
consistency with the backfill), ``hooks`` (what the phase machine calls) and ``observability`` (gauges on
/metrics, alarms).
"""
