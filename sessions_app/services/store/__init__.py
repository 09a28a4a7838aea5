"""The session stores, one module per mode, modelled on ``django.contrib.sessions.backends``.

- ``base``: the ``Session`` document and the contract every store keeps (``SessionStore``);
- one module per store: ``dynamodb_only``, ``redis_only``, ``parallel``, ``cutover``, ``cached``
  (cache-aside reads, write-through writes), ``write_behind`` (its store and its flusher);
- ``factory``: the one place that maps the current mode to its store (``get_session_store``);
- ``breaker``, ``timing``, ``publishing``: what the stores share (the Redis circuit breaker, per-tier
  latencies, change events).

Imports point one way (``base`` ← stores ← ``factory``); this package imports nothing back from the
services that use it (tests/test_import_graph.py).
"""
