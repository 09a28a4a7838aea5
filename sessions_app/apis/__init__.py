"""REST endpoints, one module per area: sessions, sms (webhook), crm, events."""
