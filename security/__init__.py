"""escalation-hub security: envelopes, webhook signatures, credentials, pseudonyms, audit chain.

Bytes in, bytes out: this package imports nothing else of ours. Generic verbs stay in their
modules (`envelopes.decrypt`, `webhooks.sign`, `webhooks.verify`); the rest is re-exported.

Exceptions (all in `security.errors`; messages never carry secrets, keys or plaintext):

    SecurityError
    ├── KeyMaterialError        a key, secret or key id is unusable (configuration, registration)
    ├── DecryptionError         a token or blob cannot be decrypted: wrong key, altered, malformed
    │   └── DisallowedAlgorithm  a JWE header names an algorithm outside the allow-list
    ├── SignatureError          a webhook's headers, timestamp or signature are refused
    ├── CredentialError         an API token or stored credential hash is malformed
    └── InvalidIdentifier       an identifier (e.g. an NHS number) is malformed; also a ValueError

Mistakes in our own arguments (a naive datetime, an over-long plaintext) raise ValueError.
"""

from security import audit, credentials, envelopes, keyring, pseudonyms, webhooks
from security.audit import (
    GENESIS,
    chain_hash,
    generate_checkpoint_key,
    sign_checkpoint,
    verify_chain,
    verify_checkpoint,
)
from security.credentials import credential_id, new_credential, verify_credential
from security.envelopes import encrypt_for, generate_recipient_key, validate_public_jwk
from security.errors import (
    CredentialError,
    DecryptionError,
    DisallowedAlgorithm,
    InvalidIdentifier,
    KeyMaterialError,
    SecurityError,
    SignatureError,
)
from security.keyring import KeyRing, generate_key
from security.pseudonyms import is_valid_nhs_number, normalise_nhs_number, pseudonym
from security.webhooks import new_secret

__all__ = [
    "GENESIS",
    "CredentialError",
    "DecryptionError",
    "DisallowedAlgorithm",
    "InvalidIdentifier",
    "KeyMaterialError",
    "KeyRing",
    "SecurityError",
    "SignatureError",
    "audit",
    "chain_hash",
    "credential_id",
    "credentials",
    "encrypt_for",
    "envelopes",
    "generate_checkpoint_key",
    "generate_key",
    "generate_recipient_key",
    "is_valid_nhs_number",
    "keyring",
    "new_credential",
    "new_secret",
    "normalise_nhs_number",
    "pseudonym",
    "pseudonyms",
    "sign_checkpoint",
    "validate_public_jwk",
    "verify_chain",
    "verify_checkpoint",
    "verify_credential",
    "webhooks",
]
