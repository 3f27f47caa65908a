"""Services extracted from the library monolith (only ``lending``)."""
