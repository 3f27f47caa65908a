"""URL map: the API under ``/api/v1/``, plus ``/healthz``, ``/metrics`` and the OpenAPI schema."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from legacy_monolith.core import views as core_views

api_v1 = [
    path("auth/", include("legacy_monolith.customers.auth_urls")),
    path("", include("legacy_monolith.catalog.urls")),
    path("", include("legacy_monolith.inventory.urls")),
    path("", include("legacy_monolith.customers.urls")),
    path("", include("legacy_monolith.orders.urls")),
    path("", include("legacy_monolith.payments.urls")),
    path("", include("legacy_monolith.shipping.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
]

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("metrics", core_views.metrics, name="metrics"),
    path("api/v1/", include(api_v1)),
]

handler404 = "legacy_monolith.core.exceptions.not_found"
handler500 = "legacy_monolith.core.exceptions.server_error"
