"""The appliance's demo IC cards: the officers' keys on SoftHSM2 tokens and a signer config each.

The tokens are made once, like the PKI, in DIR/cards. pins.json is the last file written
there, so a cards folder without it (a `tgw up` killed half-way) is removed and made again.
Without softhsm2 the appliance comes up without cards. The signer configs depend on the port
base, so they are rewritten at every run; nothing starts the signers: an officer runs
`tgw agency signer` on the PC, by hand (the command is in `tgw up`'s summary).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from tgw_common.config import load_config
from tgw_common.spool import write_atomic

from .layout import Layout, signer_port
from .provision import agency_names, read_credentials, write_secret


def ensure_cards(layout: Layout) -> bool:
    """The tokens in DIR/cards; True if made now. Raises SoftHsmMissing without softhsm2."""
    from tgw.demo.softhsm import put_officers_on_tokens

    if (layout.cards / "pins.json").is_file():
        return False
    shutil.rmtree(layout.cards, ignore_errors=True)  # tokens of an interrupted run, whose PINs nobody knows
    put_officers_on_tokens(layout.pki, layout.cards, list(agency_names(layout)))
    return True


def read_cards(layout: Layout) -> dict[str, Any] | None:
    """pins.json of DIR/cards, or None when the appliance has no cards."""
    try:
        return json.loads((layout.cards / "pins.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def softhsm_conf(layout: Layout) -> Path:
    return layout.cards / "softhsm2.conf"


def write_signer_configs(layout: Layout, *, port_base: int, portal: str) -> dict[str, dict[str, dict]]:
    """One signer config per officer in DIR/config; agency -> role -> what credentials.json keeps of it."""
    from tgw.demo.pki import ROLES
    from tgw.demo.softhsm import token_label

    cards = read_cards(layout)
    if cards is None:
        return {}
    by_agency: dict[str, dict[str, dict]] = {}
    for a, agency in enumerate(agency_names(layout)):
        for r, role in enumerate(ROLES):
            label = token_label(agency, role)
            listen = f"127.0.0.1:{signer_port(port_base, a, r)}"
            section = {"listen": listen, "portal_origin": portal, "pkcs11_module": cards["module"],
                       "token_label": label}
            dest = layout.signer_config(agency, role)
            write_atomic(dest, yaml.safe_dump({"signer": section}, sort_keys=False).encode("utf-8"))
            load_config(dest)  # a mistake is reported here, not when the officer starts the signer
            by_agency.setdefault(agency, {})[role] = {
                "token_label": label, "pin": cards["tokens"][label]["pin"], "signer_config": str(dest),
                "signer_url": f"http://{listen}"}
    return by_agency


def record_cards(layout: Layout, by_agency: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """Each agency's `cards` (and where softhsm2.conf is) in credentials.json; the credentials."""
    creds = read_credentials(layout)
    before = json.dumps(creds, sort_keys=True)
    for code, cards in by_agency.items():
        if code in creds.get("agencies", {}):
            creds["agencies"][code]["cards"] = cards
    if by_agency:
        creds["softhsm2_conf"] = str(softhsm_conf(layout))
    if json.dumps(creds, sort_keys=True) != before:
        write_secret(layout.credentials_file, (json.dumps(creds, ensure_ascii=False, indent=2) + "\n").encode())
    return creds


def signer_command(layout: Layout, agency: str, role: str) -> str:
    """How an officer starts the signer for that card (shown in `tgw up`'s summary and the docs)."""
    return (f"SOFTHSM2_CONF={softhsm_conf(layout)} tgw agency signer "
            f"--config {layout.signer_config(agency, role)}")
