"""Encryption of API tokens at rest (Fernet), keyed by SECRET_KEY or a generated key file."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

KEY_FILE_NAME = "secret.key"
_SALT = b"sms-desk/token-encryption/v1"
_ITERATIONS = 200_000


class TokenDecryptError(Exception):
    """A stored token cannot be decrypted (the key changed or the row is damaged)."""


def derive_key(secret: str) -> bytes:
    kdf = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=_SALT, iterations=_ITERATIONS)
    return base64.urlsafe_b64encode(kdf.derive(secret.encode()))


def load_or_create_key_file(data_dir: Path) -> bytes:
    """Read the generated key, or create it once with mode 0600."""
    path = data_dir / KEY_FILE_NAME
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


class TokenCipher:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, secret: str | None, data_dir: Path) -> TokenCipher:
        key = derive_key(secret) if secret else load_or_create_key_file(data_dir)
        return cls(key)

    def encrypt(self, token: str) -> bytes:
        return self._fernet.encrypt(token.encode())

    def decrypt(self, blob: bytes) -> str:
        try:
            return self._fernet.decrypt(blob).decode()
        except InvalidToken:
            raise TokenDecryptError(
                "stored token cannot be decrypted with the current key"
            ) from None

    def __repr__(self) -> str:
        return "TokenCipher(<key hidden>)"
