"""What the two web apps share: the outer upload portal and the inner operator console.

They run on different hosts and never import each other, but they sign people in, set
cookies, send security headers and run under gunicorn the same way; that logic lives here
once, one job per module. The zones keep their own tables, routes, templates, role models
and texts wherever those differ.

Nothing here imports a zone (an import-linter contract), and nothing here loads key
material: the outer zone imports this package too, and it must never hold the treasury key.
"""
