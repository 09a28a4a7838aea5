"""pgoutput messages from a real slot, parsed: every message kind, NULLs, TOAST, key changes, truncate."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from migration_app.cdc import slots
from migration_app.cdc.pgoutput import UNCHANGED, Delete, Insert, Truncate, Update, transactions_parse

pytestmark = pytest.mark.integration


def test_a_real_slot_s_messages_parse_into_transactions_in_commit_order(cdc_source):
    # given a table with a composite key, a 38-digit number, NULLs and a TOASTed value, captured by a slot
    big = secrets.token_urlsafe(12000)  # random: compresses badly, so it is stored out of line (TOAST)
    with psycopg.connect(cdc_source, autocommit=True) as db:
        db.execute(
            'CREATE TABLE "Mixed" (region text, id bigint, n numeric(38,0), note text, big text, '
            "PRIMARY KEY (region, id))"
        )
        slots.replica_identity_full(db, ["public.Mixed"])
        slots.publication_create(db, "lizzy_test_pub", ["public.Mixed"])
        start = slots.slot_create(db, "lizzy_test_parse", timeout_seconds=60)
        # when rows are inserted, updated (one column, then the key), deleted and truncated
        with db.transaction():
            db.execute(
                """INSERT INTO "Mixed" VALUES ('eu', 1, 12345678901234567890123456789012345678, NULL, %s)""", [big]
            )
            db.execute("""INSERT INTO "Mixed" VALUES ('us', 2, -1, 'two', 'small')""")
        db.execute("""UPDATE "Mixed" SET note = 'one' WHERE id = 1""")
        db.execute("""UPDATE "Mixed" SET region = 'ap' WHERE id = 2""")
        db.execute("""DELETE FROM "Mixed" WHERE id = 1""")
        db.execute('TRUNCATE "Mixed"')
        upto = slots.flush_lsn(db)
        messages = slots.slot_peek(
            db, slot="lizzy_test_parse", publication="lizzy_test_pub", upto_lsn=upto, upto_changes=1000
        )
        relations = {}
        transactions = transactions_parse(messages, relations)
        again = slots.slot_peek(
            db, slot="lizzy_test_parse", publication="lizzy_test_pub", upto_lsn=upto, upto_changes=1000
        )
        slots.slot_drop(db, "lizzy_test_parse")

    # then five transactions come back, in commit order, with every value as the server printed it
    assert len(transactions) == 5
    assert all(t.commit_lsn > start and t.end_lsn > t.commit_lsn for t in transactions)
    assert [t.commit_lsn for t in transactions] == sorted(t.commit_lsn for t in transactions)
    (relation,) = relations.values()
    assert (relation.schema, relation.table, relation.replica_identity) == ("public", "Mixed", "f")
    # REPLICA IDENTITY FULL: every column is part of the identity the old row is sent with
    names = ("region", "id", "n", "note", "big")
    assert [(c.name, c.key) for c in relation.columns] == [(name, True) for name in names]
    first, second = transactions[0].changes
    assert first == Insert(relation.oid, ("eu", "1", "12345678901234567890123456789012345678", None, big))
    assert second == Insert(relation.oid, ("us", "2", "-1", "two", "small"))
    (note,) = transactions[1].changes
    assert isinstance(note, Update)
    assert note.old_kind == "O"
    assert note.old == ("eu", "1", "12345678901234567890123456789012345678", None, big)  # FULL: the old row whole
    assert note.new[:4] == ("eu", "1", "12345678901234567890123456789012345678", "one")
    assert note.new[4] is UNCHANGED  # the TOASTed value was not resent
    (rekey,) = transactions[2].changes
    assert (rekey.old[:2], rekey.new[:2]) == (("us", "2"), ("ap", "2"))
    (delete,) = transactions[3].changes
    assert isinstance(delete, Delete)
    assert (delete.old[1], delete.old[4]) == ("1", big)
    (truncate,) = transactions[4].changes
    assert truncate == Truncate((relation.oid,), cascade=False, restart_identity=False)
    # and peeking does not consume: the same messages come back until the slot is advanced
    assert again == messages
