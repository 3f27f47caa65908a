"""Payments bounded context: charges against a fake provider that can be told to fail."""
