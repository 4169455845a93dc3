"""Alembic migrations of the intake tables (inner_zone/models.py); run by `tgw inner db upgrade`."""
