"""The parts of a CMS message as byte ranges of the DER as read, found without copying.

asn1crypto copies a value's bytes each time it parses one level deeper, so a 200 MB
envelope existed five or six times over inside each layer, and most of an envelope's
parsing time went to building objects for parts nobody looks at. Here the TLVs are walked
to the parts that matter: the bulk content (signed or encrypted) stays a memoryview of
the caller's buffer, and asn1crypto parses only the small parts (algorithm identifiers,
SignerInfos, RecipientInfos), each from its own exact slice.

`ber_problem` (cms.py) has vouched for the encoding before anything here runs, so the
walk can take lengths as DER states them; a structure of the wrong shape is a DerError.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from asn1crypto import cms

SEQUENCE, SET, OID, OCTET_STRING, INTEGER = 0x30, 0x31, 0x06, 0x04, 0x02


def context(number: int, *, constructed: bool = True) -> int:
    """The identifier octet of a context-specific tag [number]."""
    return 0x80 | (0x20 if constructed else 0) | number


class DerError(ValueError):
    """A structure of the wrong shape; the message names the part."""


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int  # the identifier octet
    start: int  # first byte of the header
    body: int  # first byte of the contents
    end: int  # one past the last byte of the contents


def read_tlv(buf: memoryview, pos: int, end: int) -> Tlv:
    if pos + 2 > end:
        raise DerError("truncated header")
    tag, length, body = buf[pos], buf[pos + 1], pos + 2
    if tag & 0x1F == 0x1F:
        raise DerError("high tag numbers do not occur in CMS")
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 8 or body + count > end:
            raise DerError("bad length")
        length = int.from_bytes(buf[body:body + count], "big")
        body += count
    if body + length > end:
        raise DerError("length beyond the end")
    return Tlv(tag, pos, body, body + length)


def children(buf: memoryview, parent: Tlv, limit: int = 64) -> list[Tlv]:
    """The TLVs inside `parent`; more than `limit` of them is a DerError (no CMS structure
    here has more, and a hostile one could hold millions)."""
    out, pos = [], parent.body
    while pos < parent.end:
        if len(out) == limit:
            raise DerError(f"more than {limit} values where at most {limit} are expected")
        child = read_tlv(buf, pos, parent.end)
        out.append(child)
        pos = child.end
    return out


def fields(buf: memoryview, parent: Tlv, what: str, shape: list[tuple[str, int, bool]]) -> dict[str, Tlv]:
    """Match the children of a SEQUENCE against (name, tag, required) in order."""
    found: dict[str, Tlv] = {}
    kids = children(buf, parent, limit=len(shape) + 1)
    i = 0
    for name, tag, required in shape:
        if i < len(kids) and kids[i].tag == tag:
            found[name] = kids[i]
            i += 1
        elif required:
            raise DerError(f"{what}: {name} is missing or has the wrong tag")
    if i != len(kids):
        raise DerError(f"{what}: unexpected field with tag 0x{kids[i].tag:02x}")
    return found


def only_child(buf: memoryview, parent: Tlv, tag: int, what: str) -> Tlv:
    kids = children(buf, parent, limit=2)
    if len(kids) != 1 or kids[0].tag != tag:
        raise DerError(f"{what}: expected exactly one value with tag 0x{tag:02x}")
    return kids[0]


def body(buf: memoryview, tlv: Tlv) -> memoryview:
    return buf[tlv.body:tlv.end]


def whole(buf: memoryview, tlv: Tlv) -> bytes:
    """The TLV's own encoding, copied: for the small parts asn1crypto is to parse."""
    return bytes(buf[tlv.start:tlv.end])


@lru_cache(maxsize=64)
def oid_name(encoded: bytes) -> str:
    """asn1crypto's name for a ContentType OID (or its dotted form if it has none)."""
    value = cms.ContentType.load(encoded)
    return value.native or value.dotted


# The longest OID in CMS is about a dozen bytes; asn1crypto decodes a long one in
# quadratic time (a 1 MB OID costs minutes), so longer ones are refused unread.
MAX_OID_BYTES = 64


def content_type(buf: memoryview, tlv: Tlv, what: str) -> str:
    if tlv.tag != OID:
        raise DerError(f"{what}: not an OBJECT IDENTIFIER")
    if tlv.end - tlv.body > MAX_OID_BYTES:
        raise DerError(f"{what}: an OBJECT IDENTIFIER of {tlv.end - tlv.body} bytes")
    return oid_name(whole(buf, tlv))
