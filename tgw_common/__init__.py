"""tgw_common."""
