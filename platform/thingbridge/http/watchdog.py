"""One thread per process that cuts sockets whose exchange is past its deadline.

A socket timeout bounds each read, not the whole answer: a receiver that sends a byte every
few seconds would hold the sending thread for as long as it liked. Shutting the socket down
from here wakes the blocked read at the deadline, whatever stage the exchange is in.
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time


class Watchdog:
    def __init__(self):
        self._heap: list[tuple[float, int, socket.socket]] = []
        self._live: dict[int, socket.socket] = {}
        self._expired: set[int] = set()
        self._ids = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket, deadline: float) -> int:
        """Shut ``sock`` down at ``deadline`` (time.monotonic) unless released before."""
        with self._wake:
            handle = next(self._ids)
            self._live[handle] = sock
            heapq.heappush(self._heap, (deadline, handle, sock))
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="outbound-watchdog",
                                                daemon=True)
                self._thread.start()
            if self._heap[0][1] == handle:  # else it wakes for an earlier one first anyway
                self._wake.notify()
        return handle

    def release(self, handle: int) -> bool:
        """Stop watching; True if the deadline had already cut the socket."""
        with self._wake:
            self._live.pop(handle, None)
            if handle in self._expired:
                self._expired.discard(handle)
                return True
        return False

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap:
                    self._wake.wait()
                deadline, handle, sock = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if self._live.pop(handle, None) is None:
                    continue  # released in time
                self._expired.add(handle)
            shut(sock)


def shut(sock: socket.socket) -> None:
    """Shut a socket down from another thread: its reader's wait ends at once."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


watchdog = Watchdog()
