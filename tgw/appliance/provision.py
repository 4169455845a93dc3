"""First-run set-up of an appliance: demo PKI, databases, signer registries, agency accounts.

Every step can be repeated: a step already done is skipped, so a `tgw up` interrupted at
any point (kill -9 included) is finished by the next one. The credentials are written
once per agency and kept; an agency whose credentials never reached the file (a crash
between creating the user and writing the file) gets a fresh password and token, and its
earlier tokens are revoked, because nobody can know them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tgw_common.config import load_config
from tgw_common.db import create_tables, make_engine, transaction
from tgw_common.registry import SignerRegistry
from tgw_common.spool import write_atomic

from .layout import Layout

LOOPBACK = "127.0.0.1/32"
OWNER_ONLY_UMASK = 0o077


def owner_only(root: Path) -> int:
    """Take group and other bits off everything under `root`; returns how many paths changed.

    The one-box appliance runs every program as one user, so nothing in it needs to be shared:
    the databases hold payees' bank accounts and ID numbers and the password hashes. Files
    made by an older `tgw up` (0644 in 0755 folders) are put right on the next start; what is
    made from now on is owner-only through the umask (OWNER_ONLY_UMASK, here and in
    supervisord's config).
    """
    changed = 0
    for path in (root, *root.rglob("*")):
        st = path.lstat()
        if path.is_symlink() or not st.st_mode & 0o077:
            continue
        os.chmod(path, st.st_mode & 0o7700)
        changed += 1
    return changed


def ensure_pki(layout: Layout, *, agencies: int) -> bool:
    """The demo PKI in DIR/pki; True if it was created now. pki.json is its last file: without it, start over."""
    from tgw.demo.pki import build_demo_pki, ensure_receipt_certificate

    if (layout.pki / "pki.json").is_file():
        # An appliance made before receipts existed gets its receipt certificate now.
        ensure_receipt_certificate(layout.pki)
        return False

    build_demo_pki(layout.pki, agencies=agencies)
    return True


def prepare_databases(layout: Layout) -> None:
    """Tables of both zones and the demo registry in BOTH databases (each zone checks signers itself)."""
    from inner_zone.dbsetup import upgrade
    from outer_zone import models  # noqa: F401 - registers the outer tables for create_tables

    registry_file = layout.pki / "registry.yaml"
    for config_path in (layout.outer_config, layout.inner_config):
        config = load_config(config_path)
        engine = make_engine(config.database.url)
        create_tables(engine)
        SignerRegistry(engine).import_file(registry_file)  # entries already there are skipped
        if config.node.zone == "inner":
            upgrade(engine, "head")


def agency_names(layout: Layout) -> dict[str, str]:
    summary = json.loads((layout.pki / "pki.json").read_text(encoding="utf-8"))
    return {code: info.get("name") or code for code, info in summary["agencies"].items()}


def read_credentials(layout: Layout) -> dict[str, Any]:
    try:
        return json.loads(layout.credentials_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def write_secret(path: Path, data: bytes) -> None:
    """Like write_atomic, but the file is 0600 from its first byte (never briefly world-readable)."""
    write_atomic(path, data, private=True)


# The demo officers of each agency, in the order a batch meets them (docs/appliance.md).
OFFICERS = {"preparer": "承辦人", "accountant": "主辦會計", "head": "機關長官", "releaser": "放行人"}


def ensure_accounts(layout: Layout, *, portal_url: str) -> dict[str, Any]:
    """For each demo agency: the agency, allow-list 127.0.0.1/32, and an officer per role
    (preparer, accountant, head, releaser), each with a password and an API token."""
    from outer_zone import audit

    config = load_config(layout.outer_config)
    engine = make_engine(config.database.url)
    creds = read_credentials(layout)
    creds.setdefault("agencies", {})
    creds["portal"] = portal_url
    who, where = audit.cli_actor()
    actor = (f"{who}(tgw up)", where)
    for code, name in agency_names(layout).items():
        entry = creds["agencies"].get(code)
        if entry is None:
            _ensure_agency(engine, code, name, actor)
            entry = creds["agencies"][code] = {"name": name, "allow": [LOOPBACK]}
        officers = entry.setdefault("officers", {})
        if "releaser" not in officers and "username" in entry:  # an appliance made before officers existed
            officers["releaser"] = {"user": entry["username"], "password": entry["password"],
                                    "token": entry["token"], "token_id": entry["token_id"]}
        for role, title in OFFICERS.items():
            if role not in officers:
                officers[role] = _ensure_officer(engine, code, f"{name} {title}", role, actor)
                _write_credentials(layout, creds)
        releaser = officers["releaser"]  # the agency's own keys name the releaser, as before
        entry.update(username=releaser["user"], password=releaser["password"], token=releaser["token"],
                     token_id=releaser["token_id"])
    _write_credentials(layout, creds)
    return creds


def _write_credentials(layout: Layout, creds: dict[str, Any]) -> None:
    data = (json.dumps(creds, ensure_ascii=False, indent=2) + "\n").encode()
    if not layout.credentials_file.exists() or layout.credentials_file.read_bytes() != data:
        write_secret(layout.credentials_file, data)


def _ensure_agency(engine, code: str, name: str, actor: tuple[str, str]) -> None:
    from outer_zone import audit
    from outer_zone.accounts import AccountError, add_agency, allow_networks

    who, where = actor
    try:
        add_agency(engine, code, name)
        audit.record(engine, "agency_added", actor=who, agency=code, ip=where, target=code, name=name)
    except AccountError:
        pass  # added by an earlier, interrupted run
    added = allow_networks(engine, code, [LOOPBACK])
    if added:
        audit.record(engine, "agency_ip_allowed", actor=who, agency=code, ip=where, target=code, networks=added)


def _ensure_officer(engine, code: str, display: str, role: str, actor: tuple[str, str]) -> dict[str, Any]:
    """The officer's user with a new password and a new token (older tokens revoked: nobody knows them)."""
    from outer_zone import audit
    from outer_zone.accounts import (
        AccountError,
        add_user,
        create_token,
        find_user,
        generate_password,
        revoke_tokens,
        set_password,
    )

    who, where = actor
    username = f"{code.lower()}-{role}"
    password = generate_password()
    with transaction(engine) as s:
        try:
            user = find_user(s, username)
            # An earlier run created the user but its password never reached the file.
            set_password(s, user, password, must_change=False, min_length=len(password))
            audit.record(s, "cli_password_set", actor=who, agency=code, ip=where, target=username)
        except AccountError:
            add_user(s, agency=code, username=username, roles=[role], password=password, display_name=display,
                     must_change=False, min_length=len(password))
            audit.record(s, "cli_user_added", actor=who, agency=code, ip=where, target=username, roles=[role])
    stale = revoke_tokens(engine, username=username)
    if stale:
        audit.record(engine, "token_revoked", actor=who, ip=where, target=username, tokens=stale)
    token_id, token = create_token(engine, username, "tgw up (appliance demo)")
    audit.record(engine, "token_created", actor=who, ip=where, target=username, token_id=token_id,
                 label="tgw up (appliance demo)")
    return {"user": username, "password": password, "token": token, "token_id": token_id}


def ensure_console_account(layout: Layout, *, console_url: str) -> dict[str, Any]:
    """An administrator of the inner operator console (when it is installed), in the same file."""
    from inner_zone.console.accounts import AccountError, add_user, generate_password, reset_password
    from inner_zone.console.audit import cli_actor
    from inner_zone.console.models import create_tables as create_console_tables

    creds = read_credentials(layout)
    if "console" in creds:
        if creds["console"].get("url") != console_url:
            creds["console"]["url"] = console_url
            write_secret(layout.credentials_file, (json.dumps(creds, ensure_ascii=False, indent=2) + "\n").encode())
        return creds
    config = load_config(layout.inner_config)
    engine = make_engine(config.database.url)
    create_console_tables(engine)
    username, password = "console-admin", generate_password()
    who, where = cli_actor()
    try:
        add_user(engine, username=username, role="administrator", password=password, display_name="一機裝置管理者",
                 must_change=False, min_length=len(password), actor=f"{who}(tgw up)", where=where)
    except AccountError:  # created by an earlier, interrupted run whose password never reached the file
        reset_password(engine, username, password, must_change=False, min_length=len(password),
                       actor=f"{who}(tgw up)", where=where)
    creds["console"] = {"url": console_url, "username": username, "password": password, "role": "administrator"}
    write_secret(layout.credentials_file, (json.dumps(creds, ensure_ascii=False, indent=2) + "\n").encode())
    return creds
