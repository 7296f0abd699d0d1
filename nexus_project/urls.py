"""URL map: the public API under /api/, probes at the root, admin, OpenAPI docs, and in
development a landing page at / and the widget demo."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from ingestion.api.demo import demo_widget
from ingestion.api.probes import healthz, prometheus_metrics, readyz

from .landing import landing

urlpatterns = [
    path("api/", include("ingestion.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", prometheus_metrics, name="metrics"),
    path(settings.NEXUS_ADMIN_URL, admin.site.urls),
    path("", landing, name="landing"),
    path("demo/widget/", demo_widget, name="demo-widget"),  # development only (404 in production)
]
