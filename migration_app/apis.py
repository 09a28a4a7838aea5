"""Read-mostly REST API for migrations (authenticated): plans with their state, validation on demand."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from lizzy.errors import NotFound
from lizzy.permissions import API_MIGRATIONS_READ, API_MIGRATIONS_VALIDATE
from lizzy.scrub import secrets_scrub
from migration_app.selectors import plan_list, run_latest, validation_latest
from migration_app.services.plans import plan_get
from migration_app.tasks import validate_task


class PlanOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    phase = serializers.CharField()
    target_tables = serializers.ListField(child=serializers.CharField())
    latest_run = serializers.SerializerMethodField()
    latest_validation = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_latest_run(self, plan):
        run = run_latest(plan=plan)
        if run is None:
            return None
        return {
            "id": run.pk,
            "kind": run.kind,
            "status": run.status,
            "rows_read": run.rows_read,
            "items_written": run.items_written,
            "items_skipped": run.items_skipped,
            "last_error": secrets_scrub(run.last_error),
        }

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_latest_validation(self, plan):
        report = validation_latest(plan=plan)
        if report is None:
            return None
        return {
            **report.summary(),
            "clean": report.clean,
            "mode": report.mode,
            "quick": report.quick,
            "at": report.created_at,
        }


_PLAN_LIST = inline_serializer("MigrationPlanList", {"results": PlanOutputSerializer(many=True)})
_QUEUED = inline_serializer(
    "MigrationValidationQueued", {"plan": serializers.CharField(), "queued": serializers.BooleanField()}
)


ERR_PLAN_NOT_FOUND = "No migration plan {name!r}."


def _plan(name: str):
    """The plan, or a 404 that names only what was asked for (the service's own message lists every plan)."""
    try:
        return plan_get(name_or_id=name)
    except NotFound:
        raise NotFound(ERR_PLAN_NOT_FOUND.format(name=name[:100])) from None


class PlanListApi(APIView):
    required_permissions = {"GET": (API_MIGRATIONS_READ,)}

    @extend_schema(responses={200: _PLAN_LIST}, operation_id="migration_plans_list", summary="Migration plans")
    def get(self, request):
        return Response({"results": PlanOutputSerializer(plan_list(), many=True).data})


class PlanDetailApi(APIView):
    required_permissions = {"GET": (API_MIGRATIONS_READ,)}

    @extend_schema(responses={200: PlanOutputSerializer}, operation_id="migration_plan_read", summary="One plan")
    def get(self, request, name: str):
        return Response(PlanOutputSerializer(_plan(name)).data)


class PlanValidateApi(APIView):
    """Queue a validation (it reads the whole source and target: never inside a request)."""

    required_permissions = {"POST": (API_MIGRATIONS_VALIDATE,)}

    class ValidateInputSerializer(serializers.Serializer):
        mode = serializers.ChoiceField(choices=["full", "quick"], default="full")

    @extend_schema(
        request=ValidateInputSerializer,
        responses={202: _QUEUED},
        operation_id="migration_plan_validate",
        summary="Validate",
    )
    def post(self, request, name: str):
        serializer = self.ValidateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        plan = _plan(name)
        validate_task.delay(plan.pk, serializer.validated_data["mode"])
        return Response({"plan": plan.name, "queued": True}, status=202)
