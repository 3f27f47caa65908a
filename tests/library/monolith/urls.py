"""URL map: the library's API under ``/api/v1/`` and ``/healthz``."""

from django.urls import include, path

from tests.library.monolith.lending import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/", include("tests.library.monolith.lending.urls")),
]

handler404 = "tests.library.monolith.lending.api.not_found"
