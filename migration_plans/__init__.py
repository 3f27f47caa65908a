"""Control plane: per-context migration plans, the field mapping, and the `strangler` CLI."""
