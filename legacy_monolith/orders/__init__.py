"""Orders bounded context: placing, listing and cancelling orders."""
