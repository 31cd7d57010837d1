"""The in-memory revocation list while its table cannot be read: held for a while, and no request queues
behind the database's timeouts."""

from __future__ import annotations

import time

import pytest

from servicekit.auth import Principal, RevocationList
from servicekit.problems import ServiceUnavailable


class Unreadable(RevocationList):
    """The table cannot be read (the database is away): every load fails, and is counted."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loads = 0

    def _load(self) -> None:
        self.loads += 1
        raise OSError("database away")


def test_never_loaded_it_answers_503_and_retries_only_after_the_refresh_period():
    revocations = Unreadable(refresh_seconds=0.3, stale_seconds=30)
    for _ in range(5):
        with pytest.raises(ServiceUnavailable):
            revocations.cutoffs()
    assert revocations.loads == 1  # the other requests did not wait on the database again
    time.sleep(0.35)
    with pytest.raises(ServiceUnavailable):
        revocations.cutoffs()
    assert revocations.loads == 2


def test_a_held_list_is_used_until_it_is_stale_then_503():
    revocations = Unreadable(refresh_seconds=0.1, stale_seconds=0.5)
    revocations._cutoffs, revocations._loaded_at = {"7": time.time() + 60}, time.monotonic() - 0.2
    revoked = Principal(user_id=7, role="user", token_id="t", issued_at=time.time())
    for _ in range(5):
        assert revocations(revoked) is True  # the held cut-off still applies
    assert revocations.loads == 1
    time.sleep(0.45)
    with pytest.raises(ServiceUnavailable):
        revocations.cutoffs()
