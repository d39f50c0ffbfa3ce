"""Re-encrypt stored secrets with the newest key, so an old key can be retired."""

from __future__ import annotations

from thingbridge.crypto import EncryptedJSONField
from thingbridge.db import db
from thingbridge.models import ALL_MODELS


def rotate_all() -> int:
    """Rewrite every encrypted value with the first configured key; returns values rewritten.

    Reading decrypts with whichever configured key matches; writing always encrypts with the
    first key, so one read-write pass is the rotation."""
    count = 0
    with db.connection_context(), db.atomic():
        for model in ALL_MODELS:
            pk = model._meta.primary_key
            for column in model._meta.sorted_fields:
                if not isinstance(column, EncryptedJSONField):
                    continue
                rows = model.select(pk, column).where(column.is_null(False)).tuples()
                for key, value in list(rows):
                    model.update({column: value}).where(pk == key).execute()
                    count += 1
    return count
