"""Stored secrets and THINGBRIDGE_SECRET_KEYS: a check that the keys read what is stored, and
the re-encryption with the newest key that lets an old key be retired while the platform runs.

Each value is re-encrypted from the ciphertext stored now and written back only if that is
still what is stored (a compare-and-swap), in short transactions: a value some process wrote
meanwhile is already encrypted with the newest key (every process runs with the new key list
before a rotation) and stays as written, and no row is locked for longer than one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from cryptography.fernet import InvalidToken
from peewee import Field, Model, Value

from thingbridge.crypto import EncryptedJSONField, SecretKeyError, keyring
from thingbridge.db import db
from thingbridge.models import ALL_MODELS

BATCH = 200  # rows per transaction: the longest any row waits for the rotation is one batch


@dataclass
class ColumnRotation:
    """What the rotation did to one encrypted column."""

    name: str  # table.column
    rotated: int = 0
    written_meanwhile: int = 0  # changed between read and write: left as written
    unreadable: list[str] = field(default_factory=list)  # ids no configured key decrypts


def encrypted_columns() -> Iterator[tuple[type[Model], Field]]:
    for model in ALL_MODELS:
        for column in model._meta.sorted_fields:
            if isinstance(column, EncryptedJSONField):
                yield model, column


def unreadable_columns() -> list[str]:
    """The encrypted columns (table.column) whose oldest or newest stored value no configured
    key decrypts: the oldest is the likeliest to be under a key removed too early, the newest
    under a key this process lacks. Two rows read per column."""
    fernet, unreadable = keyring(), []
    for model, column in encrypted_columns():
        for order in (model.created_at, model.created_at.desc()):
            row = db.execute(model.select(column).where(column.is_null(False))
                             .order_by(order).limit(1)).fetchone()
            try:
                if row is not None:
                    fernet.decrypt(row[0].encode())
            except InvalidToken:
                unreadable.append(f"{model._meta.table_name}.{column.column_name}")
                break
    return unreadable


def check_keys_read_stored_secrets() -> None:
    """Raise ``SecretKeyError`` saying so when the keys cannot read what is stored."""
    if unreadable := unreadable_columns():
        raise SecretKeyError(
            f"stored secrets cannot be decrypted with THINGBRIDGE_SECRET_KEYS "
            f"({', '.join(unreadable)}): was a key removed before `thingbridge rotate-secrets`?")


def _raw(value: str) -> Value:
    # The stored ciphertext as it is: the field's own conversion would encrypt it again.
    return Value(value, converter=False)


def _read_batch(model: type[Model], column: Field, after, size: int) -> list[tuple]:
    """Up to ``size`` (id, ciphertext) pairs with ids after ``after``, in id order."""
    pk = model._meta.primary_key
    query = model.select(pk, column).where(column.is_null(False)).order_by(pk).limit(size)
    if after is not None:
        query = query.where(pk > after)
    return list(db.execute(query))  # the cursor's rows: ciphertexts, not decrypted values


def _rotate_column(model: type[Model], column: Field, size: int) -> ColumnRotation:
    pk, fernet = model._meta.primary_key, keyring()
    done = ColumnRotation(f"{model._meta.table_name}.{column.column_name}")
    after = None
    while batch := _read_batch(model, column, after, size):
        with db.atomic():
            for key, stored in batch:
                try:
                    rotated = fernet.rotate(stored.encode()).decode()
                except InvalidToken:
                    done.unreadable.append(str(key))
                    continue
                if model.update({column: _raw(rotated)}).where(
                        (pk == key) & (column == _raw(stored))).execute():
                    done.rotated += 1
                else:
                    done.written_meanwhile += 1
        after = batch[-1][0]
    return done


def rotate_all(size: int = BATCH,
               progress: Callable[[ColumnRotation], None] | None = None) -> list[ColumnRotation]:
    """Rewrite every encrypted value with the first configured key, ``size`` rows per
    transaction; ``progress`` hears about each column when it is done. Values no configured
    key decrypts are left as they are and listed, the rest rotated."""
    results = []
    with db.connection_context():
        for model, column in encrypted_columns():
            results.append(_rotate_column(model, column, size))
            if progress:
                progress(results[-1])
    return results
