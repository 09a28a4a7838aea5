"""Seed 004: K9's DuckDB file into three per-environment tables, and the seed's repositories."""

import pytest

from lizzy.dynamodb import dynamodb_describe_table
from lizzy.errors import NotFound
from migration_app.services.k9 import EmbeddingRepository, RecordExists, ReportRepository, UserRepository
from migration_app.services.plans import plan_context, plan_save, plan_setup_tables
from migration_app.services.runs import run_create, run_execute
from migration_app.services.sample_data import k9_generate, plan_mapping
from migration_app.services.validation import plan_validate


@pytest.fixture
def k9_plan(db, dynamodb, tmp_path):
    path = tmp_path / "k9_api.db"
    k9_generate(path=str(path), users=5)
    plan = plan_save(name="k9", source_url=f"duckdb:///{path}", mapping=plan_mapping(name="k9"))
    with plan_context(plan=plan) as context:
        plan_setup_tables(context=context)
        run = run_execute(run=run_create(context=context, segments=2), context=context)
    assert run.rows_read == 5 + 10 + 5
    return plan


def test_k9_tables_indexes_and_clean_validation(k9_plan):
    assert plan_validate(plan=k9_plan).clean
    reports = dynamodb_describe_table(table="k9-reports-test")
    assert [i["IndexName"] for i in reports["GlobalSecondaryIndexes"]] == ["user_id-created_at-index"]
    embeddings = dynamodb_describe_table(table="k9-embeddings-test")
    assert [i["IndexName"] for i in embeddings["GlobalSecondaryIndexes"]] == ["model_version-created_at-index"]

    user = UserRepository.get_user("user-00001")
    assert user["preferences"] == {"theme": "dark", "alerts": False}  # JSON column → map
    assert user["created_at"] == "2025-09-01T01:00:00.000000Z"
    vectors = EmbeddingRepository.list_by_model_version("v2")
    assert len(vectors) == 2
    assert all(isinstance(value, float) for value in vectors[0]["vector"])


def test_repositories_stamp_times_and_scope_updates_to_the_owner(k9_plan):
    created = ReportRepository.create_report({"report_id": "r-new", "user_id": "user-00002", "title": "New"})
    assert created["created_at"] == created["updated_at"]
    with pytest.raises(RecordExists):
        ReportRepository.create_report({"report_id": "r-new", "user_id": "user-00002", "title": "Again"})

    with pytest.raises(NotFound):
        ReportRepository.update_report("r-new", "user-00003", {"title": "hijacked"})
    updated = ReportRepository.update_report("r-new", "user-00002", {"title": "Renamed"})

    assert updated["title"] == "Renamed"
    assert updated["updated_at"] >= created["updated_at"]
    assert ReportRepository.get_report("r-new", "user-00003") is None
    newest = ReportRepository.list_reports("user-00002")[0]
    assert newest["report_id"] == "r-new"


def test_embedding_floats_round_trip(k9_plan):
    stored = EmbeddingRepository.store_embedding(
        {"embedding_id": "e1", "product_id": "p", "model_version": "v3", "vector": [0.1, -2.5, 1e-7]}
    )
    assert EmbeddingRepository.get_embedding("e1")["vector"] == [0.1, -2.5, 1e-7] == stored["vector"]
