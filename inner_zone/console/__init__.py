"""The operator console (操作主控台): the treasury's intranet web console over the inner zone.

Flask app factory and blueprints (`app.py`, `views_*.py`), served by gunicorn
(`server.py`, `tgw inner console`), accounts from the CLI (`cli.py`,
`tgw inner console-user`). docs/console.md describes every page, role and audit event.
"""
