"""Mode changes: the phase order, rollbacks with reasons, history, the guards, and every process following."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from lizzy.redis import reset_redis
from sessions_app.models import SessionStoreModeChange, SessionStoreSetting
from sessions_app.services.sessions import get_session_store, session_new, session_save
from sessions_app.services.store.base import SessionStore
from sessions_app.services.store.cached import CachedSessionStore
from sessions_app.services.store.factory import store_for_mode
from sessions_app.services.store.parallel import shadow_divergence_record
from sessions_app.services.store.write_behind import WriteBehindSessionStore
from sessions_app.services.store_modes import (
    ERR_BACKLOG,
    ERR_FORCE_REASON,
    ERR_ROLLBACK_REASON,
    ERR_SAME_MODE,
    ModeChangeRefused,
    UnknownMode,
    store_mode_current,
    store_mode_forget_cache,
    store_mode_set,
)
from tests.sessions_app.factories import SEED_PHONE

FORWARD = ["redis_only", "parallel", "cutover", "dynamodb_only", "cached", "cached_write_behind"]


@pytest.fixture
def db_mode(settings, db, dynamodb):
    """Follow the database row (not a pinned mode), starting from the legacy store. Moving the store of
    record between Redis and DynamoDB revalidates the other store, so DynamoDB (moto) is there too."""
    settings.LIZZY_SESSION_STORE_MODE = None
    settings.LIZZY_SESSION_STORE_DEFAULT_MODE = "redis_only"
    store_mode_forget_cache()
    yield
    store_mode_forget_cache()


def walk_to(mode: str) -> None:
    for step in FORWARD[1 : FORWARD.index(mode) + 1]:
        store_mode_set(mode=step, actor="test", reason="walk", force=True)


def test_forward_path_one_step_at_a_time_is_recorded(db_mode, session_redis):
    for previous, target in zip(FORWARD, FORWARD[1:], strict=False):
        change = store_mode_set(mode=target, actor="ops@example", reason=f"phase {target}")
        assert (change.from_mode, change.to_mode) == (previous, target)
    assert store_mode_current() == "cached_write_behind"
    history = list(SessionStoreModeChange.objects.order_by("id").values_list("from_mode", "to_mode", "changed_by"))
    assert history == [(a, b, "ops@example") for a, b in zip(FORWARD, FORWARD[1:], strict=False)]
    assert SessionStoreSetting.objects.get().reason == "phase cached_write_behind"


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("redis_only", "cutover"),
        ("redis_only", "dynamodb_only"),
        ("parallel", "dynamodb_only"),
        ("cutover", "cached"),
        ("dynamodb_only", "cached_write_behind"),
        ("cached_write_behind", "dynamodb_only"),
        ("dynamodb_only", "parallel"),
    ],
)
def test_skipping_a_phase_is_refused(db_mode, session_redis, current, target):
    walk_to(current)
    with pytest.raises(ModeChangeRefused, match="skips a phase"):
        store_mode_set(mode=target, actor="test", reason="hurry", force=True)
    assert store_mode_current() == current


@pytest.mark.parametrize("index", range(1, len(FORWARD)))
def test_rollback_is_one_step_and_needs_a_reason(db_mode, session_redis, index):
    current, previous = FORWARD[index], FORWARD[index - 1]
    walk_to(current)
    with pytest.raises(ModeChangeRefused) as refused:
        store_mode_set(mode=previous, actor="test", reason="  ")
    assert refused.value.message == ERR_ROLLBACK_REASON.format(current=current, target=previous)
    change = store_mode_set(mode=previous, actor="oncall", reason="latency regression")
    assert change.reason == "latency regression"
    assert store_mode_current() == previous


def test_same_and_unknown_modes_are_refused(db_mode):
    with pytest.raises(ModeChangeRefused, match=ERR_SAME_MODE.format(mode="redis_only")):
        store_mode_set(mode="redis_only", actor="test")
    with pytest.raises(UnknownMode):
        store_mode_set(mode="memcached", actor="test")
    assert not SessionStoreModeChange.objects.exists()


def test_cutover_is_refused_while_shadow_reads_diverge(db_mode, session_redis):
    walk_to("parallel")
    shadow_divergence_record(phone=SEED_PHONE, fields=["currentNode"])
    with pytest.raises(ModeChangeRefused, match="1 divergence"):
        store_mode_set(mode="cutover", actor="test", reason="go")
    with pytest.raises(ModeChangeRefused, match=ERR_FORCE_REASON):
        store_mode_set(mode="cutover", actor="test", force=True)
    change = store_mode_set(mode="cutover", actor="lead", reason="divergence explained: test data", force=True)
    assert change.forced is True
    assert store_mode_current() == "cutover"


def test_cutover_is_allowed_with_no_divergence(db_mode, session_redis):
    walk_to("parallel")
    store_mode_set(mode="cutover", actor="test")
    assert store_mode_current() == "cutover"


def test_cutover_is_refused_when_divergences_cannot_be_read(db_mode, session_redis, settings):
    walk_to("parallel")
    settings.LIZZY_SESSION_REDIS_URL = "redis://127.0.0.1:1/0"
    reset_redis()
    with pytest.raises(ModeChangeRefused, match="cannot read the shadow-read counts"):
        store_mode_set(mode="cutover", actor="test")


def test_dropping_the_hot_tier_waits_for_the_write_behind_backlog(db_mode, session_redis, dynamodb, settings):
    from sessions_app.services.store.write_behind import sessions_flush

    walk_to("cached_write_behind")
    session_save(session=session_new(phone=SEED_PHONE), expected_version=None)
    # leaving write-behind with a backlog would strand it (issue 13, scenario 2): refused
    with pytest.raises(ModeChangeRefused) as refused:
        store_mode_set(mode="cached", actor="test", reason="back to write-through")
    assert refused.value.message == ERR_BACKLOG.format(current="cached_write_behind", target="cached", count=1)
    sessions_flush()
    store_mode_set(mode="cached", actor="test", reason="back to write-through")
    store_mode_set(mode="dynamodb_only", actor="test", reason="drop Redis")


def test_every_process_follows_a_change_after_its_cache_expires(db_mode, session_redis, settings):
    # given: this process has read the mode
    settings.LIZZY_MODE_CACHE_SECONDS = 60
    assert store_mode_current() == "redis_only"
    # when: another process changes it (a direct row update: this process's cache is not told)
    SessionStoreSetting.objects.update_or_create(
        pk=1, defaults={"mode": "parallel", "changed_at": "2026-01-01T00:00Z", "changed_by": "other"}
    )
    # then: no query until the cache expires, then the new mode
    assert store_mode_current() == "redis_only"
    settings.LIZZY_MODE_CACHE_SECONDS = 0
    store_mode_forget_cache()
    assert store_mode_current() == "parallel"
    assert get_session_store() is store_for_mode("parallel")


def test_mode_lookup_is_cached_without_a_query_per_request(db_mode, django_assert_num_queries, settings):
    settings.LIZZY_MODE_CACHE_SECONDS = 60
    store_mode_current()
    with django_assert_num_queries(0):
        for _ in range(10):
            get_session_store()


def test_store_for_cached_modes_uses_the_breaker(session_redis):
    assert type(store_for_mode("cached").inner) is CachedSessionStore
    assert isinstance(store_for_mode("cached_write_behind").inner, WriteBehindSessionStore)
    assert store_for_mode("cached").inner.breaker is store_for_mode("cached_write_behind").inner.breaker


def test_the_factory_builds_one_store_per_mode_each_keeping_the_base_contract(session_redis):
    built = {mode: store_for_mode(mode).inner for mode in FORWARD}
    assert all(isinstance(store, SessionStore) for store in built.values())
    assert len({type(store) for store in built.values()}) == len(FORWARD)  # one class (one module) per mode
    assert all(
        type(store).__module__.rpartition(".")[2] == mode
        for mode, store in built.items()
        if mode != "cached_write_behind"
    )
    assert type(built["cached_write_behind"]).__module__.endswith(".write_behind")


def test_command_prints_mode_and_history_and_changes_it(db_mode, session_redis, capsys):
    call_command("session_store_mode", "parallel", "--reason", "phase 2", "--actor", "ops")
    call_command("session_store_mode")
    out = capsys.readouterr().out
    assert "Current mode: parallel" in out
    assert "redis_only → parallel by ops: phase 2" in out
    with pytest.raises(CommandError, match="needs a reason"):
        call_command("session_store_mode", "redis_only")


def test_admin_changes_the_mode_through_the_service(db_mode, session_redis, admin_client):
    response = admin_client.post("/admin/sessions_app/sessionstoresetting/add/", {"mode": "parallel", "reason": "go"})
    assert response.status_code == 302, response.content
    change = SessionStoreModeChange.objects.get()
    assert (change.to_mode, change.changed_by) == ("parallel", "admin:admin")
    page = admin_client.get("/admin/sessions_app/sessionstoresetting/1/change/")
    assert b"Write-behind backlog" in page.content
    refused = admin_client.post("/admin/sessions_app/sessionstoresetting/1/change/", {"mode": "dynamodb_only"})
    assert b"skips a phase" in refused.content
