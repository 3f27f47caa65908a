from rest_framework.routers import SimpleRouter

from legacy_monolith.inventory.views import StockItemViewSet, WarehouseViewSet

router = SimpleRouter()
router.register("warehouses", WarehouseViewSet, basename="warehouse")
router.register("stock", StockItemViewSet, basename="stockitem")

urlpatterns = router.urls
