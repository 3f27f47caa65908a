"""Inventory models. Table and column names are a contract: see migration_plans/templates/inventory.yaml."""

from __future__ import annotations

from django.db import models


class Warehouse(models.Model):
    """A place that holds stock (``inventory_warehouse``)."""

    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.code


class StockItem(models.Model):
    """Stock of one product in one warehouse: ``quantity`` on hand, ``reserved`` of it held."""

    product = models.ForeignKey(
        "catalog.Product", on_delete=models.PROTECT, related_name="stock_items"
    )
    warehouse = models.ForeignKey(Warehouse, on_delete=models.PROTECT, related_name="stock_items")
    quantity = models.IntegerField(default=0)
    reserved = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["product", "warehouse"], name="inventory_stockitem_product_warehouse_uniq"
            ),
            models.CheckConstraint(
                condition=models.Q(quantity__gte=0), name="inventory_stockitem_quantity_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved__gte=0), name="inventory_stockitem_reserved_gte_0"
            ),
            models.CheckConstraint(
                condition=models.Q(reserved__lte=models.F("quantity")),
                name="inventory_stockitem_reserved_lte_quantity",
            ),
        ]

    @property
    def available(self) -> int:
        """Units that can still be reserved."""
        return self.quantity - self.reserved

    def __str__(self) -> str:
        return f"{self.product_id}@{self.warehouse_id}: {self.quantity} ({self.reserved} reserved)"


class Reservation(models.Model):
    """Units of a stock item held for an order (``inventory_reservation``).

    ``order_id`` is a plain integer, not a foreign key: reservations can be taken
    for an order id before (or without) an ``orders_order`` row, which is what lets
    the inventory context be extracted.
    """

    order_id = models.BigIntegerField(db_index=True)
    stock_item = models.ForeignKey(StockItem, on_delete=models.PROTECT, related_name="reservations")
    quantity = models.IntegerField()
    released = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(quantity__gt=0), name="inventory_reservation_quantity_gt_0"
            ),
        ]

    def __str__(self) -> str:
        return f"order {self.order_id}: {self.quantity} of stock item {self.stock_item_id}"
