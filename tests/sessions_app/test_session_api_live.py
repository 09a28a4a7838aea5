"""Integration: the session API against a real DynamoDB endpoint over HTTP."""

import threading
from urllib.parse import quote

import pytest

from tests.sessions_app.factories import SEED_PHONE, seed_session_document

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("seed_customer"),  # the document names CUST123
]
URL = f"/api/v1/sessions/{quote(SEED_PHONE)}"


def test_crud_over_http(live_dynamodb, api_client):
    assert api_client.put(URL, seed_session_document(), format="json").status_code == 201
    body = api_client.get(URL).json()
    assert body["customerId"] == "CUST123"
    assert body["cachedData"]["transactions"]["items"][0]["amount"] == 42.5
    assert api_client.delete(URL).status_code == 204


def test_two_writers_racing_on_one_version_exactly_one_wins(live_dynamodb, api_client, api_token):
    from rest_framework.test import APIClient

    api_client.put(URL, seed_session_document(), format="json")
    barrier = threading.Barrier(2)
    results = {}

    def writer(node):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token}")
        barrier.wait()
        response = client.put(URL, seed_session_document(currentNode=node), format="json", HTTP_IF_MATCH='"1"')
        results[node] = response.status_code

    threads = [threading.Thread(target=writer, args=(node,)) for node in ("PARTS_LIST", "TRANSACTIONS")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == [200, 412]
    winner = next(node for node, code in results.items() if code == 200)
    final = api_client.get(URL).json()
    assert final["currentNode"] == winner
    assert final["version"] == 2
