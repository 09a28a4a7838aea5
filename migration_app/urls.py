from django.urls import path

from migration_app.apis import PlanDetailApi, PlanListApi, PlanValidateApi

app_name = "migrations"

urlpatterns = [
    path("migrations/plans/", PlanListApi.as_view(), name="plan-list"),
    path("migrations/plans/<str:name>/", PlanDetailApi.as_view(), name="plan-detail"),
    path("migrations/plans/<str:name>/validate/", PlanValidateApi.as_view(), name="plan-validate"),
]
