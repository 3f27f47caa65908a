"""Pytest plugin that replays migration phases (fixtures arrive with the plans issue)."""
