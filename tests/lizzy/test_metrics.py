"""Reading metric values back for the ops console, through the registry (not private attributes)."""

from lizzy import metrics


def test_sample_value_follows_the_counter_and_is_zero_before_any_observation():
    before = metrics.sample_value("lizzy_session_cache_requests_total", {"result": "hit"})
    metrics.SESSION_CACHE_REQUESTS.labels("hit").inc(3)
    assert metrics.sample_value("lizzy_session_cache_requests_total", {"result": "hit"}) == before + 3
    assert metrics.sample_value("lizzy_session_cache_requests_total", {"result": "no-such-label"}) == 0.0


def test_sample_values_lists_every_labelled_series():
    metrics.CACHE_BACKEND_REQUESTS.labels("metrics-test", "miss").inc()
    series = {
        (labels["cache"], labels["result"]): value
        for labels, value in metrics.sample_values("lizzy_cache_requests_total")
    }
    assert series[("metrics-test", "miss")] >= 1
