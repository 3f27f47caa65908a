from rest_framework.routers import SimpleRouter

from legacy_monolith.customers.views import CustomerViewSet

router = SimpleRouter()
router.register("customers", CustomerViewSet, basename="customer")

urlpatterns = router.urls
