from __future__ import annotations

from typing import Any

SEED_PHONE = "+12065550100"


def seed_session_document(**overrides: Any) -> dict[str, Any]:
    """Seed 000's example session, as an API client sends it."""
    document = {
        "customerId": "CUST123",
        "currentNode": "MAIN_MENU",
        "cachedData": {
            "customerProfile": {"name": "Jordan Rivera", "customerId": "CUST123"},
            "profileCacheTime": "2025-11-11T10:30:00Z",
            "transactions": {"items": [{"amount": 42.5, "description": "Spring tune-up"}]},
            "transactionsCacheTime": "2025-11-11T10:35:00Z",
        },
        "sessionData": {
            "selectedEquipmentId": "EQ123",
            "selectedEquipmentName": "Honda HRX217",
            "selectedEquipmentSN": "MZCG-1234567",
            "filterUnitType": "Mowers",
            "filterModel": "HRX217",
            "problemDescription": "Engine won't start",
            "partsOrderRequested": False,
        },
    }
    document.update(overrides)
    return document
