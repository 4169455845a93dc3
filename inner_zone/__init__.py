"""inner_zone."""
