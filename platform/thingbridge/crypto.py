"""Secrets at rest: Fernet with key rotation (MultiFernet), and a peewee field that uses it."""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from peewee import FieldAccessor, TextField

_keyring: MultiFernet | None = None


class SecretKeyError(RuntimeError):
    pass


def parse_keys(keys: str) -> list[Fernet]:
    """The comma-separated Fernet keys of THINGBRIDGE_SECRET_KEYS, newest first."""
    written = [k.strip() for k in keys.split(",") if k.strip()]
    if not written:
        raise SecretKeyError("holds no key")
    parsed = []
    for position, key in enumerate(written, 1):
        try:
            parsed.append(Fernet(key.encode()))
        except ValueError:
            # The key itself is not repeated: an error line ends up in logs.
            raise SecretKeyError(f"key {position} of {len(written)} is not a Fernet key (32 "
                                 "url-safe base64-encoded bytes)") from None
    return parsed


def configure(keys: str) -> None:
    global _keyring
    try:
        _keyring = MultiFernet(parse_keys(keys))
    except SecretKeyError as exc:
        raise SecretKeyError(f"THINGBRIDGE_SECRET_KEYS {exc}") from None


def keyring() -> MultiFernet:
    if _keyring is None:
        raise SecretKeyError("secret keys not configured (create_app configures them)")
    return _keyring


def encrypt(plaintext: str) -> str:
    return keyring().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return keyring().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretKeyError("stored secret cannot be decrypted with the configured keys") from exc


def unreadable(what: str) -> str:
    """Why work that needs ``what`` (a stored secret) is not done, as its owner is told."""
    return (f"{what} cannot be read with the configured THINGBRIDGE_SECRET_KEYS (a key removed "
            "before `thingbridge rotate-secrets`?); retried with backoff until the key is back "
            "or a new value replaces it")


def rotate(token: str) -> str:
    return keyring().rotate(token.encode()).decode()


class EncryptedJSONField(TextField):
    """JSON value stored as a Fernet token: a database dump shows ciphertext only."""

    def db_value(self, value):
        if value is None:
            return None
        return encrypt(json.dumps(value, separators=(",", ":")))

    def python_value(self, value):
        if value is None:
            return None
        try:
            return json.loads(decrypt(value))
        except SecretKeyError as exc:  # the log line of whatever met it says where
            raise SecretKeyError(f"{exc} ({self.model._meta.table_name}.{self.column_name})"
                                 ) from exc.__cause__


class _ReadWhenUsed(FieldAccessor):
    """On a row selected without the column: read it (decrypting it) when it is used, never
    answer None for a value that is there."""

    def __get__(self, instance, instance_type=None):
        if instance is not None and self.name not in instance.__data__ \
                and instance._pk is not None:
            model = type(instance)
            instance.__data__[self.name] = model.select(self.field).where(
                model._meta.primary_key == instance._pk).scalar()
        return super().__get__(instance, instance_type)


class LazyEncryptedJSONField(EncryptedJSONField):
    """An encrypted value that reads which do not need it leave out (and their decryption,
    which fails when no configured key reads it): read when used."""

    accessor_class = _ReadWhenUsed
