"""Requests the gateway has given up on: refused before any work, and never committed.

The gateway stamps every request with the moment it passed it on (`X-Request-Start: t=<seconds>`, NGINX's
`$msec`) and answers 504 itself when a service has not answered within its `proxy_read_timeout` (15 s). A
request can still reach a service after that: it waited in the socket of a process that was stalled
(stopped, starved of CPU, swapping) and is read once the process runs again. Doing it then would be a change
whose client was told it failed; a retry would book, register or create a second time.

So, when `REQUEST_DEADLINE_SECONDS` (default 14, a little under the gateway's timeout; 0 turns this off) have
passed since the stamp:
- a request not yet begun is refused with 503 and `Retry-After`, before any work;
- a transaction about to commit in a request is refused the same way, and rolls back.
The client has already had the gateway's 504 (its answer is this 503 only if the gateway waits longer than
the deadline); either way nothing changed, and the retry is safe.

A request without the header (a service called directly, a gateway that does not stamp) has no deadline.
The stamp is compared with this host's clock: the gateway's and the services' clocks must agree to well
under a second (NTP), as they do for the tokens' `exp`.
"""

from __future__ import annotations

import math
import time

from flask import Flask, g, has_request_context, request
from sqlalchemy import event

from .db import ServiceSession
from .problems import ServiceUnavailable

HEADER = "X-Request-Start"


class GatewayGaveUp(ServiceUnavailable):
    """The request outlived `REQUEST_DEADLINE_SECONDS`: the gateway has answered its client already."""

    def __init__(self) -> None:
        super().__init__("The request waited too long to be served and was not carried out; retry it.")


def started_at(value: str) -> float | None:
    """The Unix time in an `X-Request-Start` value: `t=1767225600.123` (NGINX's `$msec`) or the bare number,
    in seconds, milliseconds or microseconds (read by magnitude, as APM agents do). None if it is none of them."""
    raw = value.strip().removeprefix("t=")
    try:
        stamp = float(raw)
    except ValueError:
        return None
    if not math.isfinite(stamp) or stamp <= 0:
        return None
    if stamp > 1e15:
        return stamp / 1e6
    if stamp > 1e12:
        return stamp / 1e3
    return stamp


def init_request_deadline(app: Flask, seconds: int) -> None:
    """Refuse the requests (and the commits) that come after `seconds` from the gateway's stamp."""
    if seconds <= 0:
        return

    @app.before_request
    def _refuse_a_request_the_gateway_gave_up_on():
        stamp = request.headers.get(HEADER)
        start = started_at(stamp) if stamp else None
        if start is None:
            return
        deadline = start + seconds
        if time.time() >= deadline:
            raise GatewayGaveUp()
        g.request_deadline = deadline


@event.listens_for(ServiceSession, "before_commit", insert=True)
def _no_commit_after_the_deadline(session) -> None:
    """Refuse to commit a request's transaction after its deadline. A refused transaction stays refused (it
    cannot be rolled back from inside its own commit, so a second commit of it must fail too); the one after
    its rollback commits: the clean-up a failure does (forgetting a claimed Idempotency-Key) goes through."""
    if not has_request_context():
        return
    deadline = g.get("request_deadline")
    if deadline is None:
        return
    transaction = session.get_transaction()
    refused = g.get("refused_transaction")
    if refused is None and time.time() >= deadline:
        g.refused_transaction = transaction
        raise GatewayGaveUp()
    if refused is not None and refused is transaction:
        raise GatewayGaveUp()
