"""Inventory bounded context: warehouses, stock levels and reservations."""
