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
