"""Token-authenticated, paginated, read-only REST endpoints for the CRM data the SMS workflow uses.

Views check filters, call one selector and serialize; errors take the one error shape.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.request import Request

from lizzy.errors import NotFound
from lizzy.permissions import API_CRM_READ, READ_CUSTOMER_MESSAGES
from sessions_app import selectors
from sessions_app.models import (
    Customer,
    Equipment,
    OrderStatus,
    Part,
    PartsOrder,
    ServiceRequest,
    ServiceStatus,
    Transaction,
    UnitType,
)
from sessions_app.services.session_documents import CUSTOMER_TEXT_HIDDEN

ERR_CUSTOMER_NOT_FOUND = "No customer {customer_id}."
CRM_READ = {"GET": (API_CRM_READ,)}


def _filters(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CustomerListApi(generics.ListAPIView):
    required_permissions = CRM_READ

    class FilterSerializer(serializers.Serializer):
        search = serializers.CharField(required=False, max_length=100, help_text="Name contains, or exact ID.")

    class CustomerOutputSerializer(serializers.ModelSerializer):
        customerId = serializers.CharField(source="customer_id")  # noqa: N815 - the seed's attribute names

        class Meta:
            model = Customer
            fields = ("customerId", "name", "phone", "email")

    serializer_class = CustomerOutputSerializer

    def get_queryset(self) -> QuerySet[Customer]:
        return selectors.customer_list(**_filters(self.FilterSerializer, self.request))

    @extend_schema(operation_id="crm_customers_list", parameters=[FilterSerializer], summary="List customers")
    def get(self, request: Request, *args: Any, **kwargs: Any):
        return super().get(request, *args, **kwargs)


class EquipmentListApi(generics.ListAPIView):
    required_permissions = CRM_READ

    class FilterSerializer(serializers.Serializer):
        unitType = serializers.ChoiceField(choices=UnitType.choices, required=False)  # noqa: N815
        model = serializers.CharField(required=False, max_length=64)
        customerId = serializers.CharField(required=False, max_length=32)  # noqa: N815

    class EquipmentOutputSerializer(serializers.ModelSerializer):
        equipmentId = serializers.CharField(source="equipment_id")  # noqa: N815
        serialNumber = serializers.CharField(source="serial_number")  # noqa: N815
        unitType = serializers.CharField(source="unit_type")  # noqa: N815
        customerId = serializers.CharField(source="owner.customer_id")  # noqa: N815

        class Meta:
            model = Equipment
            fields = ("equipmentId", "name", "serialNumber", "unitType", "model", "customerId")

    serializer_class = EquipmentOutputSerializer

    def get_queryset(self) -> QuerySet[Equipment]:
        return selectors.equipment_list(filters=_filters(self.FilterSerializer, self.request))

    @extend_schema(operation_id="crm_equipment_list", parameters=[FilterSerializer], summary="List equipment")
    def get(self, request: Request, *args: Any, **kwargs: Any):
        return super().get(request, *args, **kwargs)


class PartListApi(generics.ListAPIView):
    required_permissions = CRM_READ

    class FilterSerializer(serializers.Serializer):
        unitType = serializers.ChoiceField(choices=UnitType.choices, required=False)  # noqa: N815
        model = serializers.CharField(required=False, max_length=64, help_text="A compatible model, e.g. HRX217.")
        search = serializers.CharField(required=False, max_length=100, help_text="Name or SKU contains.")

    class PartOutputSerializer(serializers.ModelSerializer):
        unitType = serializers.CharField(source="unit_type")  # noqa: N815
        compatibleModels = serializers.SlugRelatedField(  # noqa: N815
            source="compatible_models", slug_field="name", many=True, read_only=True
        )

        class Meta:
            model = Part
            fields = ("sku", "name", "unitType", "compatibleModels", "price", "stock")

    serializer_class = PartOutputSerializer

    def get_queryset(self) -> QuerySet[Part]:
        return selectors.part_list(filters=_filters(self.FilterSerializer, self.request)).prefetch_related(
            "compatible_models"
        )

    @extend_schema(operation_id="crm_parts_list", parameters=[FilterSerializer], summary="List parts")
    def get(self, request: Request, *args: Any, **kwargs: Any):
        return super().get(request, *args, **kwargs)


class CustomerTransactionListApi(generics.ListAPIView):
    required_permissions = CRM_READ

    class TransactionOutputSerializer(serializers.ModelSerializer):
        class Meta:
            model = Transaction
            fields = ("date", "amount", "description")

    serializer_class = TransactionOutputSerializer

    def get_queryset(self) -> QuerySet[Transaction]:
        customer_id = self.kwargs["customer_id"]
        if not Customer.objects.filter(customer_id=customer_id).exists():
            raise NotFound(ERR_CUSTOMER_NOT_FOUND.format(customer_id=customer_id))
        return selectors.transaction_list(customer_id=customer_id)

    @extend_schema(operation_id="crm_customer_transactions_list", summary="A customer's transactions")
    def get(self, request: Request, *args: Any, **kwargs: Any):
        return super().get(request, *args, **kwargs)


class PartsOrderListApi(generics.ListAPIView):
    required_permissions = CRM_READ

    class FilterSerializer(serializers.Serializer):
        customerId = serializers.CharField(required=False, max_length=32)  # noqa: N815
        status = serializers.ChoiceField(choices=OrderStatus.choices, required=False)

    class PartsOrderOutputSerializer(serializers.ModelSerializer):
        customerId = serializers.CharField(source="customer.customer_id")  # noqa: N815
        equipmentId = serializers.CharField(source="equipment.equipment_id", allow_null=True, default=None)  # noqa: N815
        createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815
        lines = serializers.ListField(child=serializers.DictField())

        class Meta:
            model = PartsOrder
            fields = ("id", "reference", "customerId", "equipmentId", "lines", "status", "createdAt")

    serializer_class = PartsOrderOutputSerializer

    def get_queryset(self) -> QuerySet[PartsOrder]:
        return selectors.parts_order_list(filters=_filters(self.FilterSerializer, self.request))

    @extend_schema(operation_id="crm_parts_orders_list", parameters=[FilterSerializer], summary="List parts orders")
    def get(self, request: Request, *args: Any, **kwargs: Any):
        return super().get(request, *args, **kwargs)


class ServiceRequestListApi(generics.ListAPIView):
    required_permissions = CRM_READ

    class FilterSerializer(serializers.Serializer):
        customerId = serializers.CharField(required=False, max_length=32)  # noqa: N815
        status = serializers.ChoiceField(choices=ServiceStatus.choices, required=False)

    class ServiceRequestOutputSerializer(serializers.ModelSerializer):
        customerId = serializers.CharField(source="customer.customer_id")  # noqa: N815
        equipmentId = serializers.CharField(source="equipment.equipment_id", allow_null=True, default=None)  # noqa: N815
        problemDescription = serializers.SerializerMethodField(  # noqa: N815
            help_text="What the customer wrote; masked for callers without lizzy.read_customer_messages."
        )
        createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815

        class Meta:
            model = ServiceRequest
            fields = ("id", "reference", "customerId", "equipmentId", "problemDescription", "status", "createdAt")

        def get_problemDescription(self, obj: ServiceRequest) -> str:  # noqa: N802
            request = self.context.get("request")
            if request is not None and request.user.has_perm(READ_CUSTOMER_MESSAGES):
                return obj.problem_description
            return CUSTOMER_TEXT_HIDDEN

    serializer_class = ServiceRequestOutputSerializer

    def get_queryset(self) -> QuerySet[ServiceRequest]:
        return selectors.service_request_list(filters=_filters(self.FilterSerializer, self.request))

    @extend_schema(
        operation_id="crm_service_requests_list", parameters=[FilterSerializer], summary="List service requests"
    )
    def get(self, request: Request, *args: Any, **kwargs: Any):
        return super().get(request, *args, **kwargs)
