from __future__ import annotations

import stat
from pathlib import Path

import pytest

from bot.db.crypto import KEY_FILE_NAME, TokenCipher, TokenDecryptError

TOKEN = "gotsms-secret-token-0123456789"


def test_round_trip_and_no_clear_text() -> None:
    cipher = TokenCipher.from_settings("a-long-enough-secret-key", Path("/nonexistent"))
    blob = cipher.encrypt(TOKEN)
    assert TOKEN.encode() not in blob
    assert cipher.decrypt(blob) == TOKEN


def test_same_secret_gives_same_key_across_restarts() -> None:
    blob = TokenCipher.from_settings("a-long-enough-secret-key", Path("/x")).encrypt(TOKEN)
    again = TokenCipher.from_settings("a-long-enough-secret-key", Path("/x"))
    assert again.decrypt(blob) == TOKEN


def test_generated_key_file_is_created_once_with_mode_0600(tmp_path: Path) -> None:
    first = TokenCipher.from_settings(None, tmp_path / "data")
    key_file = tmp_path / "data" / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    content = key_file.read_bytes()
    blob = first.encrypt(TOKEN)
    second = TokenCipher.from_settings(None, tmp_path / "data")
    assert key_file.read_bytes() == content
    assert second.decrypt(blob) == TOKEN


def test_wrong_key_is_a_clear_error_without_the_token() -> None:
    blob = TokenCipher.from_settings("first-secret-key-123", Path("/x")).encrypt(TOKEN)
    other = TokenCipher.from_settings("second-secret-key-456", Path("/x"))
    with pytest.raises(TokenDecryptError) as caught:
        other.decrypt(blob)
    assert TOKEN not in str(caught.value)
    assert "key" not in repr(other).lower().replace("<key hidden>", "")
