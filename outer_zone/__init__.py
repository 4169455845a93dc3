"""outer_zone."""
