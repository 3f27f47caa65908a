"""Shipping bounded context: shipments of paid orders."""
