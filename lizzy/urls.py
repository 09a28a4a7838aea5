from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from lizzy.apis import ApiRootApi
from lizzy.observability import views as observability_views

urlpatterns = [
    path(settings.LIZZY_ADMIN_URL, admin.site.urls),
    path("api/v1/", ApiRootApi.as_view(), name="api-root"),
    path("api/v1/", include("sessions_app.urls")),
    path("api/v1/", include("migration_app.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI from the project's static files (drf-spectacular-sidecar), its setup script a file of its own
    # (no inline script): the page works offline and under a Content-Security-Policy of 'self'.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", observability_views.healthz, name="healthz"),
    path("readyz", observability_views.readyz, name="readyz"),
    path("metrics", observability_views.metrics_view, name="metrics"),
]
