"""Exceptions raised by the security package; messages never carry secrets or plaintext.

SecurityError
├── KeyMaterialError        a key, secret or key id is unusable (configuration or registration)
├── DecryptionError         a token or blob cannot be decrypted: wrong key, tampered, malformed
│   └── DisallowedAlgorithm  a JWE header names an algorithm outside the allow-list
├── SignatureError          a webhook's headers, timestamp or signature are refused
├── CredentialError         an API token or stored credential hash is malformed
└── InvalidIdentifier       an identifier (e.g. an NHS number) is malformed; also a ValueError
"""

__all__ = [
    "CredentialError",
    "DecryptionError",
    "DisallowedAlgorithm",
    "InvalidIdentifier",
    "KeyMaterialError",
    "SecurityError",
    "SignatureError",
]


class SecurityError(Exception):
    """Base class of every error raised by the security package."""


class KeyMaterialError(SecurityError):
    """A key, secret or key id is missing, malformed, too weak or of a refused type."""


class DecryptionError(SecurityError):
    """A token or blob cannot be decrypted: wrong key, tampered with, or malformed."""


class DisallowedAlgorithm(DecryptionError):
    """A JWE header names an algorithm that is not on the allow-list."""


class SignatureError(SecurityError):
    """A signed message's headers, timestamp or signature are refused."""


class CredentialError(SecurityError):
    """An API token or stored credential hash is not in the expected form."""


class InvalidIdentifier(SecurityError, ValueError):
    """An identifier is malformed; the message never repeats the identifier."""
