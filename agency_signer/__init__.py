"""`tgw agency signer`: the officer's local signing service (the HiPKI Local Server pattern).

It runs on the officer's PC, listens on 127.0.0.1 only and answers only the configured
portal origin. The portal page asks it to sign (`POST /v1/sign`); the officer confirms on
the service's own page (what is signed, read from the bytes themselves; the card PIN typed
there, never into the portal); the service signs on the card through PKCS #11 and the page
collects the TPE/1 result (`GET /v1/requests/<id>`). docs/agency-workflow.md has the threat
model. A package of its own, not part of either zone: it runs on neither host.
"""
