"""Demo material: realistic demo documents and a demo PKI with unencrypted keys.

Only the demo commands (`tgw pki`, `tgw demo-data`, `tgw up`) and tests import this
package; no daemon does (tests/test_no_demo_in_production.py keeps it so).
"""
