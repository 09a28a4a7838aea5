"""Prometheus metrics shared by every part of the product (served at /metrics)."""

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

DYNAMODB_LATENCY = Histogram(
    "lizzy_dynamodb_call_seconds",
    "DynamoDB call latency by operation and table.",
    ["operation", "table"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
DYNAMODB_ERRORS = Counter(
    "lizzy_dynamodb_errors_total",
    "DynamoDB call errors by operation, table and error code.",
    ["operation", "table", "code"],
)
DYNAMODB_CONDITIONAL_FAILURES = Counter(
    "lizzy_dynamodb_conditional_check_failed_total",
    "Conditional writes whose condition did not hold (not errors: the key existed, another writer won).",
    ["operation", "table"],
)
DYNAMODB_THROTTLES = Counter(
    "lizzy_dynamodb_throttles_total",
    "Throttled DynamoDB requests (including UnprocessedItems retries).",
    ["operation", "table"],
)
DYNAMODB_CONSUMED = Counter(
    "lizzy_dynamodb_consumed_capacity_units_total",
    "Consumed capacity units reported by DynamoDB.",
    ["table", "operation", "kind"],
)

HTTP_REQUEST_LATENCY = Histogram(
    "lizzy_http_request_seconds",
    "HTTP request latency by view (URL name), method and status.",
    ["view", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CAPACITY_FLUSH_FAILURES = Counter(
    "lizzy_capacity_flush_failures_total",
    "Failed attempts to persist consumed capacity to the database (units are kept and retried).",
)
ADMIN_LOGIN_FAILURES = Counter(
    "lizzy_admin_login_failures_total",
    "Refused admin sign-ins (wrong credentials, not staff, or locked out).",
)
# --- Session store modes, hot tier, write-behind (sessions_app/services/store/) -------
SESSION_TIER_LATENCY = Histogram(
    "lizzy_session_tier_seconds",
    "Session store call latency per tier (redis, dynamodb) and operation.",
    ["tier", "operation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SESSION_CACHE_REQUESTS = Counter(
    "lizzy_session_cache_requests_total", "Hot-tier session reads in the cached modes.", ["result"]
)
SESSION_FALLBACKS = Counter(
    "lizzy_session_fallbacks_total", "Session reads or writes sent to DynamoDB instead of Redis.", ["mode", "reason"]
)
SESSION_SHADOW_READS = Counter("lizzy_session_shadow_reads_total", "Parallel-mode reads compared across both stores.")
SESSION_DIVERGENCES = Counter("lizzy_session_divergences_total", "Shadow reads whose two copies differed.")
SESSION_MIRROR_ERRORS = Counter(
    "lizzy_session_mirror_errors_total", "Mirror writes (the non-primary store) that failed.", ["store", "reason"]
)
SESSION_WRITE_THROUGH_DEGRADED = Counter(
    "lizzy_session_write_behind_degraded_total", "Write-behind saves written through because Redis was away."
)
BREAKER_STATE = Gauge("lizzy_circuit_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", ["name"])
FLUSH_BACKLOG = Gauge("lizzy_session_flush_backlog", "Write-behind sessions not yet flushed to DynamoDB.")
FLUSH_OLDEST_AGE = Gauge("lizzy_session_flush_oldest_age_seconds", "Age of the oldest unflushed write-behind write.")
FLUSH_RUNS = Counter("lizzy_session_flush_runs_total", "Write-behind flush runs by outcome.", ["result"])
FLUSH_ITEMS = Counter("lizzy_session_flush_items_total", "Sessions written to DynamoDB by the flusher.")
SESSION_FORKS = Counter(
    "lizzy_session_forks_total",
    "Write-behind copies dropped because DynamoDB was written without them (Redis away): their unflushed turns.",
    ["where"],
)
SESSION_BYPASS_REGISTRY = Counter(
    "lizzy_session_bypass_registry_total",
    "Shared bypass registry: writes made without Redis registered, registrations DynamoDB refused, entries "
    "applied and removed by flushes, recoveries that could not read it.",
    ["result"],
)
FLUSH_FENCE_RAISED = Counter(
    "lizzy_session_flush_fence_raised_total",
    "Write-behind fence raises: a session went to DynamoDB without Redis, so flushes check versions.",
)
FLUSH_SECONDS = Histogram(
    "lizzy_session_flush_seconds", "Duration of a write-behind flush run.", buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30)
)
EVENTS_PUBLISHED = Counter("lizzy_session_events_total", "Session change events published.", ["result"])
MIGRATION_SOURCE_SKIPPED = Counter(
    "lizzy_migration_source_skipped_total",
    "Source records a migration read but could not copy (a Redis key that expired during the copy).",
    ["source", "reason"],
)
CACHE_BACKEND_REQUESTS = Counter(
    "lizzy_cache_requests_total", "DynamoDB cache backend lookups by result (hit, miss).", ["cache", "result"]
)
CACHE_BACKEND_ERRORS = Counter(
    "lizzy_cache_errors_total",
    "DynamoDB cache backend failures (reads become misses, failed writes delete the old value).",
    ["cache", "operation", "reason"],
)


# --- Collectors apps register: figures read at scrape time (change capture lag) ---------------------
SCRAPE_COLLECTORS: list = []


def register_scrape_collector(collector) -> None:
    """Register a custom collector with this process's registry and with the multiprocess one (views)."""
    if collector not in SCRAPE_COLLECTORS:
        SCRAPE_COLLECTORS.append(collector)
        REGISTRY.register(collector)


# --- Reading values back (the ops console), through the registry rather than private ``_value`` -----


def sample_value(name: str, labels: dict[str, str] | None = None) -> float:
    """This process's current value of one sample (``…_total`` for counters); 0 when never observed."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def sample_values(name: str) -> list[tuple[dict[str, str], float]]:
    """Every labelled series of one sample name in this process, e.g. hits and misses of every cache."""
    found = []
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name == name:
                found.append((dict(sample.labels), sample.value))
    return found
