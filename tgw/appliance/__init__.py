"""The whole gateway on one machine: `tgw up`, `tgw down`, `tgw status` (docs/appliance.md).

This package lives in the CLI composition root because it is the one place allowed to
know every part: it writes each part's config from config/appliance/, runs the parts
under supervisord, and builds the demo envelope mix (`tgw demo-data envelopes`) that the
end-to-end test and the benchmark push through the appliance.
"""
