"""Password hashing with argon2id, bounded so that concurrent logins cannot exhaust memory.

Parameters are OWASP's Password Storage Cheat Sheet minimum for argon2id: m=19 MiB, t=2, p=1.
Each hash needs its `memory_cost` while it runs; at most `concurrency` run at once per process
and a caller waits at most `wait_seconds` for a turn, then gets 503 with Retry-After (a burst of
logins is shed, never an out-of-memory kill). Stored hashes with older parameters are upgraded
at the next successful login (`needs_rehash`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from servicekit.problems import ServiceUnavailable

OWASP_ARGON2ID = {"time_cost": 2, "memory_cost": 19 * 1024, "parallelism": 1}
_M_MMAP_THRESHOLD = -3


def _return_hash_memory_to_the_system() -> None:
    """glibc raises its mmap threshold after the first large block is freed; from then on each thread's
    19 MiB argon2 buffer stays resident in that thread's malloc arena (8 threads: +150 MiB, measured).
    A fixed threshold keeps such buffers in mmap, unmapped as soon as the hash is done."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


_return_hash_memory_to_the_system()


class BoundedHasher:
    def __init__(self, concurrency: int = 2, wait_seconds: float = 3.0, **parameters: int):
        self.hasher = PasswordHasher(**{**OWASP_ARGON2ID, **parameters})
        self.configure(concurrency, wait_seconds)

    def configure(self, concurrency: int, wait_seconds: float) -> None:
        """Set how many hashes may run at once (called by create_app from the configuration)."""
        self._slots = threading.BoundedSemaphore(concurrency)
        self.wait_seconds = wait_seconds

    @contextmanager
    def _turn(self) -> Iterator[None]:
        slots = self._slots
        if not slots.acquire(timeout=self.wait_seconds):
            raise ServiceUnavailable("Too many password checks at once; try again shortly.", retry_after=2)
        try:
            yield
        finally:
            slots.release()

    def hash(self, password: str) -> str:
        with self._turn():
            return self.hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        """True if `password` matches; False for a mismatch or an unreadable hash."""
        with self._turn():
            try:
                return self.hasher.verify(stored_hash, password)
            except (VerificationError, InvalidHashError):
                return False

    def needs_rehash(self, stored_hash: str) -> bool:
        return self.hasher.check_needs_rehash(stored_hash)
