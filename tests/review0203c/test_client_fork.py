"""Clients at Celery's ``worker_process_init``: a pool process forked from a parent that had made a client.

``clients_warm_up`` says a client "cannot be made in the parent before the fork: its connection pool must not
be shared". A prefork pool process is a fork of the worker's main process: whatever client that process made
(a task run in it, a health check, a management command that forks) is in the child's ``_clients`` too, and
``get_client`` hands the child the parent's client, with its urllib3 pool and the sockets in it.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery.signals import worker_process_init

from lizzy.dynamodb import client


class _Endpoint(BaseHTTPRequestHandler):
    """A DynamoDB stand-in on keep-alive HTTP/1.1 that notes the client port of every request."""

    protocol_version = "HTTP/1.1"
    ports: list[int] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).ports.append(self.client_address[1])
        body = json.dumps({"TableNames": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def endpoint(settings):
    _Endpoint.ports = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.AWS_ENDPOINT_URL_DYNAMODB = f"http://127.0.0.1:{server.server_address[1]}"
    client.reset_client()
    yield
    client.reset_client()
    server.shutdown()
    server.server_close()


def test_a_pool_process_forked_after_the_parent_used_a_client_does_not_share_its_connections(endpoint):
    # given a parent process whose client has a pooled keep-alive connection to the endpoint
    client.get_client().list_tables()
    (parent_port,) = _Endpoint.ports

    # when a pool process is forked from it, starts (worker_process_init) and makes a call
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether its call went through a connection of its own, then leave
        code = 1
        try:
            worker_process_init.send(sender=None)
            client.get_client().list_tables()
            code = 0
        finally:
            os.write(write, str(code).encode())
            os._exit(0)
    os.close(write)
    outcome = os.read(read, 16)
    os.waitpid(pid, 0)
    os.close(read)

    # then the child's request came on a connection of its own, not on the parent's socket
    assert outcome == b"0"
    assert len(_Endpoint.ports) == 2
    assert _Endpoint.ports[1] != parent_port, "the child wrote its request on the parent's pooled socket"
