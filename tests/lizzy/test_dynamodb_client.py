"""The process's DynamoDB clients: made when a Celery pool process starts, not inside its first task."""

from __future__ import annotations

import logging

import pytest
from celery.signals import worker_process_init

from lizzy.dynamodb import client


@pytest.fixture
def no_clients():
    client.reset_client()
    yield
    client.reset_client()


def test_a_pool_process_has_its_clients_before_its_first_task(no_clients):
    # given: a process that has made no DynamoDB client yet
    assert not client._clients
    # when: Celery starts it as a pool process
    worker_process_init.send(sender=None)
    # then: the clients a request and a migration unit use are there, made once
    assert set(client._clients) == {"default", "bulk"}
    bulk = client._clients["bulk"]
    assert client.get_client("bulk") is bulk
    assert isinstance(bulk._serializer, client._CodecSerializer)


def test_a_client_that_cannot_be_made_does_not_stop_the_process(no_clients, monkeypatch, caplog):
    def refuse(_profile="default"):
        raise ValueError("no region")

    monkeypatch.setattr(client, "get_client", refuse)
    with caplog.at_level(logging.WARNING, logger="lizzy.dynamodb.client"):
        worker_process_init.send(sender=None)
    assert "ahead of the first task" in caplog.text


def test_a_pool_process_freezes_its_start_up_heap_after_the_warm_up(no_clients):
    """A full collection in a task then walks what tasks made, not Django's and botocore's start-up objects:
    they were 300-520 ms pauses in every worker at once, 0.7 s into the benchmark's run."""
    import gc

    from celery.signals import worker_ready

    assert gc.get_freeze_count() == 0
    worker_process_init.send(sender=None)
    frozen = gc.get_freeze_count()
    assert frozen > 10_000  # the test process's modules, Django, botocore's models: all of them
    # the clients were made first: they are frozen too (out of every generation the collector walks)
    bulk = client._clients["bulk"]
    assert not any(each is bulk for each in gc.get_objects())
    gc.unfreeze()
    worker_ready.send(sender=None)  # a solo pool's process, a prefork parent
    assert gc.get_freeze_count() > 10_000
