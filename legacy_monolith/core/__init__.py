"""Cross-cutting plumbing of the monolith: errors, pagination, request ids, logs, metrics, seed."""
