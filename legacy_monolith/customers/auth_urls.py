from django.urls import path

from legacy_monolith.customers.views import ObtainTokenView, WhoAmIView

urlpatterns = [
    path("token/", ObtainTokenView.as_view(), name="auth-token"),
    path("whoami/", WhoAmIView.as_view(), name="auth-whoami"),
]
