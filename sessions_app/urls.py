from django.urls import path

from sessions_app.apis import crm as crm_apis
from sessions_app.apis import events as event_apis
from sessions_app.apis import sessions as session_apis
from sessions_app.apis import sms as sms_apis

app_name = "sessions_app"

urlpatterns = [
    path("sessions/", session_apis.SessionListApi.as_view(), name="session-list"),
    # A session is named by its ref (opaque, lizzy.phone.phone_ref); a phone number there is deprecated.
    path("sessions/refs", session_apis.SessionRefApi.as_view(), name="session-ref"),
    path("sessions/<str:ref>", session_apis.SessionDetailApi.as_view(), name="session-detail"),
    path("sessions/<str:ref>/presence", event_apis.SessionPresenceApi.as_view(), name="session-presence"),
    path("events/sessions", event_apis.SessionEventsApi.as_view(), name="session-events"),
    # SMS webhook and CRM (issue 3)
    path("sms/inbound", sms_apis.sms_inbound_view, name="sms-inbound"),
    path("crm/customers/", crm_apis.CustomerListApi.as_view(), name="crm-customer-list"),
    path(
        "crm/customers/<str:customer_id>/transactions/",
        crm_apis.CustomerTransactionListApi.as_view(),
        name="crm-customer-transactions",
    ),
    path("crm/equipment/", crm_apis.EquipmentListApi.as_view(), name="crm-equipment-list"),
    path("crm/parts/", crm_apis.PartListApi.as_view(), name="crm-part-list"),
    path("crm/parts-orders/", crm_apis.PartsOrderListApi.as_view(), name="crm-parts-order-list"),
    path("crm/service-requests/", crm_apis.ServiceRequestListApi.as_view(), name="crm-service-request-list"),
]
