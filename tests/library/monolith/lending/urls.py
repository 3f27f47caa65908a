"""``/api/v1/`` routes of the lending app."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from tests.library.monolith.lending import views

router = SimpleRouter()
router.register("branches", views.BranchViewSet, basename="branch")
router.register("books", views.BookViewSet, basename="book")
router.register("members", views.MemberViewSet, basename="member")
router.register("loans", views.LoanViewSet, basename="loan")

copy_list = views.CopyViewSet.as_view({"get": "list", "post": "create"})
copy_detail = views.CopyViewSet.as_view(
    {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
)

urlpatterns = [
    path("auth/token/", views.ObtainToken.as_view(), name="auth-token"),
    path("auth/whoami/", views.WhoAmI.as_view(), name="auth-whoami"),
    path("copies/", copy_list, name="copy-list"),
    path("copies/<str:branch>/<str:book>/<int:copy_no>/", copy_detail, name="copy-detail"),
    path("", include(router.urls)),
]
