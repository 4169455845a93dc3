"""Regenerate the generated parts of the docs: `python -m tgw_common.docs_gen`.

docs/reason-codes.md comes from tgw_common/reasons.py and docs/configuration.md's key
table from the Config model, so neither can drift from the code (tests compare them).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path

from pydantic import BaseModel

from .config import Config
from .reasons import reason_table_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"

REASONS_HEADER = """# Reason codes 拒絕原因代碼

Every refusal names one of these codes and the layer it came from. They are stable: a code
is never renamed or reused. API answers carry them as `reason`, quarantine files as
`reason`, `tgw envelope open --json` as `reason` with `layer`.

Layers, outermost first: `upload` (the outer zone's HTTP intake), `release` (layer 1, the
releaser's SignedData), `seal` (layer 2), `approval` (layer 3), `payload` (layer 4, the ZIP
and its manifest), `documents` (schemas and business rules), `intake` (the payment
database), `transfer` (the one-way link).

A refusal with `"hold": true` (only `CRL_STALE` with `trust.stale_crl: hold`) is not final:
the envelope waits until a fresh CRL is installed and is then judged again.

This table is generated from `tgw_common/reasons.py` (`python -m tgw_common.docs_gen`); a
test fails when the two differ.

"""

# What each foundation key means; the parts' sections are described in their own docs.
DESCRIPTIONS = {
    "node.zone": "`outer` (internet side) or `inner` (intranet side); recorded with every event.",
    "node.host": "Host name recorded with every event and heartbeat (default: the machine's name).",
    "node.data_dir": "Base folder for the process's own state.",
    "database.url": "SQLAlchemy URL of the zone's database: `sqlite:///relative/or/absolute.db` (relative to "
                    "this file) or `postgresql+psycopg://user@host/db`.",
    "database.echo": "Log every SQL statement (debugging only).",
    "database.standby_url": "URL of the streaming standby (PostgreSQL only): the default target of "
                            "`tgw inner db promote`. With a primary and a standby, `database.url` names both "
                            "hosts (`postgresql+psycopg://user@h1:5432,h2:5432/db?target_session_attrs=read-write`) "
                            "so the runners find the new primary by themselves after a switch-over.",
    "database.require_synchronous_standby": "When true, the inner runner refuses to start unless the primary "
                                            "has a connected synchronous standby (so every confirmed load is "
                                            "on two machines).",
    "database.replication_lag_alert_seconds": "The `replication_lag` monitor check alerts when a standby's "
                                              "replay lag passes this many seconds, or when no standby is "
                                              "connected while `synchronous_standby_names` names one.",
    "events.publish": "ZeroMQ endpoint the process's PUB socket connects to (the zone monitor's `monitor.listen`);"
                      " null: events go to the database only.",
    "events.keep_days": "How long provenance events are kept.",
    "trust.anchors": "Trust anchors (the government root CA): PEM or DER files, at least one. Judged at start-up: "
                     "a certificate that is not a CA (basicConstraints CA:TRUE) or whose keyUsage lacks keyCertSign "
                     "stops the process with an error naming the file and the subject; an expired or not yet valid "
                     "one is kept and logged as a warning naming both.",
    "trust.intermediates": "Intermediate CA certificates (e.g. GCA) used to build paths; signers may also carry them. "
                           "Judged at start-up like `trust.anchors`.",
    "trust.crl_dir": "Folder of CRLs (`*.crl`, `*.der`, `*.pem`); the newest per issuer is used. Every CA on a path "
                     "needs one, the intermediate's from the root.",
    "trust.crls": "Individual CRL files, in addition to `crl_dir`.",
    "trust.stale_crl": "A CRL past its nextUpdate: `hold` keeps the envelope until a fresh CRL arrives; `refuse` "
                       "refuses it (CRL_STALE either way, never accepted silently).",
    "trust.max_chain_depth": "Most certificates on a signer's path, the signer and the trust anchor included "
                             "(root > GCA > signer is 3); a longer path is refused with CERT_CHAIN_TOO_LONG.",
    "treasury.certificate": "The treasury's current envelope certificate: seals must name it.",
    "treasury.private_key": "Its private key: inner zone only; the outer zone has none.",
    "treasury.private_key_password_env": "Name of an environment variable holding the key's password, if encrypted.",
    "treasury.legacy_pkcs1v15": "Accept RSA PKCS #1 v1.5 key transport (the profile's legacy mode). Off by default.",
    "outer.receipt_overdue_minutes": "An upload sent this many minutes ago without a receipt (loaded, refused or "
                                     "held) from the inner zone is `overdue` in the API and the portal, and the "
                                     "monitor alerts on it.",
    "receipts.certificate": "The treasury's receipt certificate: the inner zone signs receipts with it, the outer "
                            "zone accepts receipts from it alone (docs/receipts.md).",
    "receipts.private_key": "Its private key: inner zone only (never the envelope key); the outer zone has none.",
    "receipts.private_key_password_env": "Name of an environment variable holding the receipt key's password, if "
                                         "encrypted.",
    "receipts.chain": "Intermediate CA certificates carried in every receipt, so that the root alone verifies it.",
    "receipts.outbound": "Inner zone: the folder receipts are published into, `<tracking_id>.<n>.p7s`, for the "
                         "return link's sender.",
    "receipts.poll_seconds": "Inner zone: how often `tgw inner receipts run` looks for fates without a receipt.",
    "receipts.mail_refusals": "Inner zone: mail each refused envelope's receipt facts to its agency's contact "
                              "(`tgw inner agency set --contact`) through `monitor.smtp`, zh-TW first; once per "
                              "refusal. Off, or without a `monitor` section, nothing is mailed.",
    "receipts.inbound": "Outer zone: the folder the return link's receiver (its `transfer_receive.inbound`) "
                        "publishes receipts into; `tgw outer receipts run` verifies and stores each.",
    "receipts.dropped_dir": "Outer zone: where a receipt that fails verification is set aside, with the reason "
                            "logged and counted (docs/receipts.md lists the reasons).",
    "policy.clock_skew_seconds": "How far signingTime may lie in the future.",
    "policy.max_signing_age_seconds": "How old signingTime may be at receipt.",
    "policy.digest_algorithms": "Digests accepted in signatures (subset of sha256, sha384, sha512).",
    "policy.signature_algorithms": "Signature schemes accepted (subset of rsassa_pkcs1v15, rsassa_pss).",
    "policy.content_ciphers": "Seal ciphers accepted (subset of aes256_cbc, aes128_cbc, aes256_gcm).",
    "limits.max_envelope_bytes": "Largest envelope file accepted (TOO_LARGE).",
    "limits.max_entries": "Most entries in the payload ZIP (ARCHIVE_TOO_MANY_ENTRIES).",
    "limits.max_entry_bytes": "Largest unpacked entry (ARCHIVE_TOO_LARGE).",
    "limits.max_total_bytes": "Largest unpacked archive (ARCHIVE_TOO_LARGE).",
    "limits.max_compression_ratio": "Largest unpacked:packed ratio of an entry over 1 MiB (ARCHIVE_RATIO).",
    "signer.listen": "`127.0.0.1:PORT` the officer's signing service (`tgw agency signer`) listens on; any other "
                     "address is refused.",
    "signer.portal_origin": "The one portal origin (`https://host[:port]`) the service answers (CORS, Private "
                            "Network Access, and an Origin check on every request); never `*`.",
    "signer.pkcs11_module": "Path of the card's PKCS #11 module (the card vendor's; SoftHSM2: "
                            "`/usr/lib/softhsm/libsofthsm2.so`).",
    "signer.pkcs11_uri": "The card as an RFC 7512 `pkcs11:` URI (token=, object=, id=, ?module-path=), instead of "
                         "the next keys; a pin-value in it is refused.",
    "signer.token_label": "Label of the card's token.",
    "signer.key_label": "CKA_LABEL of the signing key, when the token holds more than one.",
    "signer.key_id": "CKA_ID of the signing key (hex), when the token holds more than one.",
    "signer.pin_entry": "Where the officer gives the PIN: `page` (on the service's own page, for every request), "
                        "`prompt` (once in the terminal) or `file` (`pin_file`: tests and demos). Every request is "
                        "still confirmed on the page.",
    "signer.pin_file": "The PIN file for `pin_entry: file`.",
    "signer.request_ttl_seconds": "How long a request waits for the officer's confirmation before it expires.",
    "signer.max_request_bytes": "Largest payload or layer a request may carry.",
    "transfer_send.repeat_schedule_seconds": "The carousel: when each copy of a file goes, in seconds after its first "
                                             "copy (1-20 offsets, the first 0, strictly increasing). A receiver down "
                                             "for less than the last offset loses nothing; each offset costs one more "
                                             "copy of every file ([transfer.md](transfer.md)). Replaces the deprecated "
                                             "`repeat` and `repeat_spacing_seconds`.",
}
PART_DOCS = {
    "documents": "documents.md", "inner": "inner.md", "console": "console.md", "outer": "outer.md",
    "transfer_send": "transfer.md", "transfer_receive": "transfer.md", "monitor": "monitoring.md",
    "signer": "agency-workflow.md",
}


def _type_name(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (list, dict):
        return f"{origin.__name__} of {', '.join(_type_name(a) for a in typing.get_args(annotation))}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation)).replace("NoneType", "null")


def _rows(model: type[BaseModel], prefix: str, section: str):
    for name, field in model.model_fields.items():
        if name == "source":
            continue
        key = f"{prefix}{name}"
        annotation = field.annotation
        inner = [a for a in (typing.get_args(annotation) or (annotation,)) if isinstance(a, type)]
        nested = next((a for a in inner if issubclass(a, BaseModel)), None)
        if nested is not None and not prefix:
            yield from _rows(nested, f"{key}.", name)
            continue
        value = field.get_default(call_default_factory=False)
        shown = str(value) if isinstance(value, Path) else repr(value)
        default = "required" if field.is_required() else f"`{shown}`"
        if field.default_factory is not None:
            default = "(computed)"
        described = DESCRIPTIONS.get(key) or (f"see [{PART_DOCS[section]}]({PART_DOCS[section]})"
                                             if section in PART_DOCS else "")
        yield f"| `{key}` | {_type_name(annotation)} | {default} | {described} |"


def config_table_markdown() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += list(_rows(Config, "", ""))
    return "\n".join(lines) + "\n"


CONFIG_HEADER = """# Configuration 設定

Every process reads one YAML file, given with `--config FILE` (or `TGW_CONFIG`). All files
share one typed model (`tgw_common/config.py`); a process uses the sections it needs.
Examples, one per process, are in [`config/`](../config/).

- Relative paths (files, folders, `sqlite:///` URLs) are relative to the YAML file's folder.
- An unknown key, a wrong type, a missing required key or a missing file stops start-up
  with exit code 2 and a message naming the file, the key and the problem, e.g.
  `config/inner.yaml: limits.max_entries: Input should be a valid integer; policy.colour: unknown key`.
- Files that must exist (trust anchors, CRL files, the treasury certificate and key) are
  checked at load time.

| process | example | sections it needs |
|---|---|---|
| `tgw envelope open`, `tgw inner run`, `tgw inner process` | `config/inner.yaml` | node, database, trust, treasury, policy, limits, documents, inner |
| `tgw outer serve` | `config/outer.yaml` | node, database, trust, policy, limits, documents, outer, treasury (certificate only: never the key) |
| `tgw transfer send` / `receive` | `config/transfer-send.yaml`, `config/transfer-receive.yaml` | node, database, transfer_send / transfer_receive |
| `tgw monitor run` | `config/monitor-outer.yaml`, `config/monitor-inner.yaml` | node, database, monitor |
| `tgw registry ...` | any of the zone's files | database |
| `tgw agency signer` (the officer's PC) | see [agency-workflow.md](agency-workflow.md) | node, signer |

## Every key

Generated from the model (`python -m tgw_common.docs_gen`); a test fails when it differs.
Sections without a description here are described in the part's own document.

"""


def main() -> None:
    (DOCS / "reason-codes.md").write_text(REASONS_HEADER + reason_table_markdown(), encoding="utf-8")
    (DOCS / "configuration.md").write_text(CONFIG_HEADER + config_table_markdown(), encoding="utf-8")
    print(f"wrote {DOCS / 'reason-codes.md'} and {DOCS / 'configuration.md'}")


if __name__ == "__main__":
    main()
