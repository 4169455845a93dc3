"""TPE/1: the treasury's payment envelope (../shared/spec/envelope-profile.md).

Build (agency side): build_payload -> sign_new / add_signature -> make_seal -> sign_new.
Open (gateway side): EnvelopeOpener.check_release (outer zone) or .open (inner zone).
"""

from .cms import SignerCheck
from .opener import EnvelopeOpener, OpenedEnvelope, ReleaseCheck, SignerSummary, describe_opened
from .payload import MANIFEST, PROFILE, Payload, build_payload, unpack_payload
from .seal import SealInfo, make_seal, open_seal
from .signed import add_signature, read_signed, sign_new

__all__ = [
    "MANIFEST", "PROFILE", "EnvelopeOpener", "OpenedEnvelope", "Payload", "ReleaseCheck", "SealInfo",
    "SignerCheck", "SignerSummary", "add_signature", "build_payload", "describe_opened", "make_seal",
    "open_seal", "read_signed", "sign_new", "unpack_payload",
]
