"""Adversarial review of issue 16: a plan whose target tables are gone must not advance (any door)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from migration_app.models import Phase
from migration_app.selectors import plan_next_phase
from migration_app.services.phases import PhaseGuardFailed, plan_advance
from tests.migration_app.test_admin_plan_pages import migrated, restart_the_endpoint  # noqa: F401

pytestmark = pytest.mark.django_db


def test_the_changelist_action_does_not_advance_a_plan_whose_tables_are_gone(migrated, ops_admin_client):  # noqa: F811
    """The console button is disabled and its POST refused, but the changelist's "Advance to the next phase"
    action calls plan_advance directly: parallel -> cutover on the strength of a validation of tables that no
    longer exist."""
    restart_the_endpoint(migrated)
    ops_admin_client.post(
        reverse("admin:migration_app_migrationplan_changelist"),
        {"action": "advance_phase", "_selected_action": [migrated.pk]},
    )
    migrated.refresh_from_db()
    assert migrated.phase == Phase.PARALLEL, migrated.phase


def test_the_phase_guard_itself_refuses_the_next_phase_without_target_tables(migrated):  # noqa: F811
    """The check lives in the console view, not in phase_guard: every other caller (the admin action, a
    script, a future API) moves on to validate, then cutover, on a clean report of tables that do not exist."""
    restart_the_endpoint(migrated)
    assert plan_next_phase(plan=migrated) == Phase.VALIDATE
    with pytest.raises(PhaseGuardFailed):
        plan_advance(plan=migrated, to_phase=Phase.VALIDATE, reason="review")


def test_cutover_is_refused_when_the_validated_tables_are_gone(migrated):  # noqa: F811
    """Even granting validate: cutover trusts the old clean FULL report although its tables are gone."""
    restart_the_endpoint(migrated)
    try:
        plan_advance(plan=migrated, to_phase=Phase.VALIDATE, reason="review")
    except PhaseGuardFailed:
        return  # refused one step earlier: fine
    with pytest.raises(PhaseGuardFailed):
        plan_advance(plan=migrated, to_phase=Phase.CUTOVER, reason="review")


def test_recreated_empty_tables_do_not_bring_the_old_clean_validation_back(migrated, ops_admin_client):  # noqa: F811
    """After migration_setup_tables the tables exist again, empty. The warning goes, and with it the "no longer
    holds": the console reads "validation clean" with Advance on, and the plan cuts over to empty tables."""
    from django.core.management import call_command

    from migration_app.selectors import plan_progress

    restart_the_endpoint(migrated)
    call_command("migration_setup_tables", migrated.name)
    progress = plan_progress(plan=migrated)
    cut_over = False
    try:
        plan_advance(plan=migrated, to_phase=Phase.VALIDATE, reason="review")
        plan_advance(plan=migrated, to_phase=Phase.CUTOVER, reason="review")
        cut_over = True
    except PhaseGuardFailed:
        pass
    assert not cut_over, "cut over to empty tables on a validation of the tables that were lost"
    assert progress["advance_refused"] or progress["validation"]["stale"], progress
