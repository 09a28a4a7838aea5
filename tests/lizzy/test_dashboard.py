import pytest
from django.core.cache import cache

from lizzy.dashboard import register_panel, unregister_panel
from lizzy.observability.alarms import alarm_event_record
from sessions_app.services.sessions import session_new, session_save

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


def test_dashboard_shows_sessions_by_node_alarms_and_capacity(dynamodb, ops_admin_client):
    # given two live sessions at two nodes and a throttled request
    first = session_new(phone="+12065550100")
    session_save(session=first, expected_version=None)
    second = session_new(phone="+12065550101")
    second.current_node = "PARTS_LOOKUP"
    session_save(session=second, expected_version=None)
    alarm_event_record(kind="throttled", operation="Query", table="LizzySMSSessions-test", code="ThrottlingException")

    response = ops_admin_client.get("/admin/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="panel-sessions_by_node"' in html
    assert "PARTS_LOOKUP" in html
    assert '<th id="sessions-total">2</th>' in html
    # the throttle alarm is red, the other two green
    assert html.count('class="lizzy-alarm-firing"') == 1
    assert html.count('class="lizzy-alarm-ok"') == 2
    assert "ThrottlingException" in html  # recent errors
    assert 'id="capacity-projected-cost"' in html
    assert "Live sessions" in html  # the Ops console entry in the app list


def test_a_panel_added_by_another_part_of_the_product_shows_and_a_broken_one_does_not_break_the_page(
    dynamodb, ops_admin_client
):
    def broken(request):
        raise RuntimeError("feature state unknown")

    # Keys of their own: the product's real panels (store_mode, breaker...) must survive this test.
    register_panel("test_added", "Added", "admin/lizzy/panels/alarms.html", lambda request: {"alarms": []})
    register_panel("test_broken", "Broken", "admin/lizzy/panels/alarms.html", broken)
    try:
        html = ops_admin_client.get("/admin/").content.decode()
    finally:
        unregister_panel("test_added")
        unregister_panel("test_broken")
    assert 'id="panel-test_added"' in html
    assert 'id="panel-test_broken"' in html
    assert "Unavailable (RuntimeError)." in html


def test_cost_page_compares_prices_and_the_redis_node(dynamodb, ops_admin_client):
    html = ops_admin_client.get("/admin/ops/cost/").content.decode()
    # seed 000's example at its own prices: $0.0038 + $0.0005 + $0.125 = $0.13
    assert "$0.0038 + $0.0005 + $0.125 = $0.13" in html
    assert "193424" in html  # break-even vs cache.t3.small ($25) at seed 000's prices
    assert "cache.t4g.small" in html


def test_cost_flush_needs_change_permission(dynamodb, ops_viewer_client, ops_admin_client):
    assert ops_viewer_client.get("/admin/ops/cost/").status_code == 200
    assert ops_viewer_client.post("/admin/ops/cost/").status_code == 403
    assert ops_admin_client.post("/admin/ops/cost/").status_code == 302


def test_admin_url_is_configurable(settings, ops_admin_client, dynamodb):
    from importlib import reload

    from django.urls import clear_url_caches

    import lizzy.urls

    settings.LIZZY_ADMIN_URL = "ops-7f3a/"
    try:
        reload(lizzy.urls)
        clear_url_caches()
        assert ops_admin_client.get("/ops-7f3a/").status_code == 200
        assert ops_admin_client.get("/admin/").status_code == 404
    finally:
        settings.LIZZY_ADMIN_URL = "admin/"
        reload(lizzy.urls)
        clear_url_caches()
