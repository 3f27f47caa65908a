"""The legacy Django + DRF shop that strangler migrates, one bounded context at a time."""
