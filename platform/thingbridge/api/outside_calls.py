"""A bulkhead between the API's requests and the outside servers they wait on.

Some requests wait on another server while the API answers them: a provider (an instance's
check, a consent's code exchange, a connector action) or a name server (a webhook or callback
URL being registered). Under gunicorn's sync workers each holds a whole worker process for as
long as that server takes (up to the call's budget: 20 s for an action, 2 s for a lookup), so
a provider or a name server that hangs would take every worker, and with them every app's
reads. At most ``THINGBRIDGE_API_OUTSIDE_CALLS`` such requests run at once across the server's
processes; `thingbridge api` sets it to the server's request slots minus one, so one is always
left for everything else. A request that finds no slot free answers 503 ``OUTSIDE_CALLS_BUSY``
at once, before anything was recorded (repeating it is safe), with a Retry-After of a few
seconds, spread: a request that waited for a slot would hold the very slot left for the
others, and clients retrying as told would take it for good.

The slots are files locked with ``flock`` in a folder private to the server (made by the CLI
before gunicorn forks): a lock is shared by the server's processes and threads alike, and the
kernel releases it when its holder dies (gunicorn ending a worker at its timeout), so no slot
is ever lost.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import current_app

from thingbridge.errors import ApiError
from thingbridge.http.urls import outbound_url_problem

SLOTS_DIR = "THINGBRIDGE_API_OUTSIDE_CALLS_DIR"  # set by the CLI for the server's processes
log = logging.getLogger(__name__)
RETRY_AFTER = (3, 8)  # seconds, drawn at random: retries spread rather than arrive together
_own_dir: Path | None = None


class Busy(ApiError):
    def __init__(self, limit: int):
        super().__init__(503, f"this server already waits on {limit} outside server(s) (a "
                              f"provider, a name server; THINGBRIDGE_API_OUTSIDE_CALLS); "
                              f"nothing was done, try again in a moment", "OUTSIDE_CALLS_BUSY")
        self.data = {"headers": {"Retry-After": str(random.randint(*RETRY_AFTER))}}


def share_between_processes(server: str, slots: int) -> str:
    """Before a server forks its processes: a folder of their own for their slots (private:
    no other user can hold one), and the number of slots unless the operator set it. Returns
    the folder (a few empty files), for a caller that outlives the server to remove."""
    os.environ[SLOTS_DIR] = tempfile.mkdtemp(prefix=f"thingbridge-outside-calls-{server}-")
    os.environ.setdefault("THINGBRIDGE_API_OUTSIDE_CALLS", str(max(1, slots)))
    return os.environ[SLOTS_DIR]


@contextmanager
def outside_call() -> Iterator[None]:
    """Hold one of the server's outside-call slots for the block; 503 ``Busy`` when none is
    free. No limit when the setting is 0."""
    with slot() as free:
        if not free:
            raise Busy(current_app.config["API_OUTSIDE_CALLS"])
        yield


@contextmanager
def slot(handover: bool = False) -> Iterator[bool]:
    """Hold one of the server's outside-call slots for the block if one is free; whether one
    was (with the setting 0, no limit: always).

    Work a worker can take over instead (``handover``: a connector action's first attempt)
    takes one only while another stays free, for a consent's code exchange or an instance's
    check, which no worker can make for the waiting user; and none without a limit: a server
    that sets none (a plain gunicorn) keeps its workers off providers as before."""
    limit = current_app.config["API_OUTSIDE_CALLS"]
    if not limit:
        yield not handover
        return
    held = _handover_slot(_folder(), limit) if handover else _any_slot(_folder(), limit)
    try:
        yield held is not None
    finally:
        if held is not None:
            os.close(held)  # closing the descriptor releases its lock


def _any_slot(folder: Path, limit: int) -> int | None:
    taken = _take(folder, range(limit))
    if taken is None:  # once more a moment later: a handover's probe holds one for an instant
        time.sleep(0.005)
        taken = _take(folder, range(limit))
    return taken[0] if taken else None


def _handover_slot(folder: Path, limit: int) -> int | None:
    """A slot other than the first, held only if another is free too; None if not, or if the
    slot files cannot be used (the work is handed over instead)."""
    taken = None
    try:
        taken = _take(folder, range(1, limit))
        if taken is not None and _another_free(folder, limit, taken[1]):
            return taken[0]
    except OSError:
        log.exception("outside-call slots in %s", folder)
    if taken is not None:
        os.close(taken[0])
    return None


def _another_free(folder: Path, limit: int, mine: int) -> bool:
    """Whether a slot besides number ``mine`` is free (taken and let go at once: a request may
    take it a moment later, which is what it is left for)."""
    probe = _take(folder, (number for number in range(limit) if number != mine))
    if probe is not None:
        os.close(probe[0])
    return probe is not None


def url_problem(url: str, owner: str) -> str | None:
    """Why ``url`` may not be registered (``http.urls.outbound_url_problem``), its name looked
    up under a slot."""
    with outside_call():
        return outbound_url_problem(url, owner)


def _take(folder: Path, slots: Iterable[int]) -> tuple[int, int] | None:
    """A descriptor holding the lock of one of the ``slots``' files and its number, or None if
    all are held."""
    for slot in slots:
        fd = os.open(folder / f"slot-{slot}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd, slot
        except BlockingIOError:
            os.close(fd)
        except BaseException:
            os.close(fd)
            raise
    return None


def _folder() -> Path:
    """The server's folder, or one of this process's own when no server made one (the
    development server, tests through Flask's client)."""
    global _own_dir
    if shared := os.environ.get(SLOTS_DIR):
        return Path(shared)
    if _own_dir is None:
        _own_dir = Path(tempfile.mkdtemp(prefix="thingbridge-outside-calls-"))
        atexit.register(shutil.rmtree, _own_dir, True)
    return _own_dir
