"""Customers bounded context: shop accounts, profiles and API tokens."""
