"""dualwrite package."""
