"""Leases: a row of work (a webhook lane's head, a broker cursor) held by whoever has its token
until it expires. A holder that dies simply stops renewing, and the work passes to the next
claimant after at most one lease, which is how these loops stay single-threaded per row without
a lock held across network I/O. Tables that use it have ``lease_token`` and ``leased_until``."""

from __future__ import annotations

import datetime
import uuid

from thingbridge.db import utcnow


class Lease:
    def __init__(self, model, seconds: float):
        self.model = model
        self.duration = datetime.timedelta(seconds=seconds)

    def free(self, now: datetime.datetime):
        """Nobody holds it, or the holder's time ran out."""
        until = self.model.leased_until
        return until.is_null() | (until <= now)

    def held(self, token: str):
        return self.model.lease_token == token

    def takeable(self, token: str, now: datetime.datetime, due):
        """Already held with ``token`` (a task sent for its own claim, or its retry), or free
        and ``due`` (a task sent without a claim; a stale copy finds its row not due any
        more, or held by a newer claim)."""
        return self.held(token) | (self.free(now) & due)

    def take(self, where, now: datetime.datetime | None = None,
             token: str | None = None) -> str | None:
        """Take the row matching ``where`` if it is free; the token, or None if not taken.
        Passing the token of a lease already held hands it on to another row."""
        now = now or utcnow()
        token = token or str(uuid.uuid4())
        taken = self.model.update(lease_token=token, leased_until=now + self.duration).where(
            where & self.free(now)).execute()
        return token if taken else None

    def take_own(self, where, token: str, due, now: datetime.datetime | None = None):
        """Hold the row matching ``where`` with ``token`` (renewed from now) if it is
        ``takeable``; the row as the same statement left it, or None if it is not."""
        now = now or utcnow()
        rows = list(self.model.update(lease_token=token, leased_until=now + self.duration)
                    .where(where & self.takeable(token, now, due))
                    .returning(self.model).execute())
        return rows[0] if rows else None

    def release(self, where, token: str) -> int:
        """Let go at once of the rows matching ``where`` that ``token`` holds."""
        return self.model.update(**self.RELEASED).where(where & self.held(token)).execute()

    def renewal(self, now: datetime.datetime | None = None) -> dict:
        """Fields that extend a held lease from now (merge into the holder's UPDATE)."""
        return {"leased_until": (now or utcnow()) + self.duration}

    RELEASED = {"lease_token": None, "leased_until": None}
