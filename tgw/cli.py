"""`tgw`: the one command for every part of the gateway.

This module only composes the parts' own click groups; each part owns its commands.
"""

from __future__ import annotations

import click

from tgw_common.logging_setup import setup_logging

HELP = """Treasury e-Payment Gateway (國庫電子支付閘道).

Agencies' signed, encrypted payment envelopes (TPE/1) come in at the outer zone, cross a
one-way link, and are decrypted, verified and loaded exactly once in the inner zone.

\b
Parts:
  pki        demo PKI for trying the gateway out; fresh CRLs
  agency     what an agency does: build, sign, seal and release an envelope
  demo-data  realistic demo documents
  envelope   inspect or open (verify) one envelope
  registry   the signer registry (which certificate signs for which agency and role)
  outer      the internet-facing upload portal and API
  transfer   the one-way link: sender, receiver, lossy relay, gaps, resend
  inner      the intranet runner, quarantine, operator console
  monitor    health checks, alert e-mails, metrics
  appliance  the one-box appliance's helpers (upload, trace, SMTP sink)

\b
Exit codes: 0 done; 1 refused (the answer is no); 2 usage or config error;
3 operational failure. Every command takes --help. Docs: docs/ in the source tree.
"""


@click.group(help=HELP, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
              help="Logs go to stderr as JSON lines.")
@click.version_option(package_name="treasury-gateway")
def main(log_level: str) -> None:
    setup_logging(log_level.upper())


def _register() -> None:
    from inner_zone.cli import inner
    from monitoring.cli import monitor
    from outer_zone.cli import outer
    from tgw.appliance.cli import appliance, down, status, up
    from tgw.commands import agency, demo_data, envelope, pki, registry
    from transfer.cli import transfer

    for group in (pki, agency, demo_data, envelope, registry, outer, transfer, inner, monitor):
        main.add_command(group)
    for command in (up, down, status, appliance):  # the whole gateway on one machine (docs/appliance.md)
        main.add_command(command)


_register()
