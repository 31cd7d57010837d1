"""Bounded waits on a PostgreSQL that stops answering (frozen, partitioned): never hold a thread for long.

Three limits apply:
- `connect_timeout` (libpq) bounds opening a connection;
- `statement_timeout` (server side) bounds a slow statement on a live server;
- a client-side deadline, enforced here, bounds any wait on a server that answers nothing at all.
  When the server process is stopped its kernel still acknowledges TCP, so neither keepalives
  nor `tcp_user_timeout` notice; a watchdog thread shuts down the socket of a call that has
  waited longer than the deadline, psycopg raises `OperationalError`, SQLAlchemy invalidates the
  pool, and the request becomes a 503. When the database answers again, new connections work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError, OperationalError

log = logging.getLogger(__name__)

# A pooled connection idle at least this long is pinged before use. One checked in more recently was working
# then: if the server dropped it since, its statement fails once (503), and the pool is invalidated.
PING_AFTER_IDLE_SECONDS = 1.0


class Watchdog:
    """Shuts down the socket of any database call that has waited more than `deadline` seconds."""

    def __init__(self, deadline: float, interval: float = 0.2):
        self.deadline = deadline
        self.interval = interval
        self._busy: dict[int, tuple[float, int]] = {}  # id(dbapi connection) -> (deadline, socket fd)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="db-watchdog", daemon=True)
        self._thread.start()

    enabled = True  # off for `run.py migrate`: an index build may rightly take minutes

    def begin(self, dbapi_connection, deadline: float | None = None) -> None:
        if dbapi_connection is None or not self.enabled:
            return
        try:
            fd = dbapi_connection.fileno()
        except Exception:  # already closed: nothing can hang on it
            return
        with self._lock:
            self._busy[id(dbapi_connection)] = (time.monotonic() + (deadline or self.deadline), fd)

    def end(self, dbapi_connection) -> None:
        if dbapi_connection is None:
            return
        with self._lock:
            self._busy.pop(id(dbapi_connection), None)

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            now = time.monotonic()
            with self._lock:
                overdue = [(key, fd) for key, (ends, fd) in self._busy.items() if now > ends]
                for key, _fd in overdue:
                    del self._busy[key]
            for _key, fd in overdue:
                log.warning("a database call exceeded its deadline: closing its connection")
                _shutdown(fd)


def _shutdown(fd: int) -> None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.close()


def engine_options(connect_timeout: int, statement_timeout_ms: int, pool_timeout: int) -> dict:
    """SQLAlchemy engine options bounding every wait on the database (psycopg 3)."""
    return {
        "pool_pre_ping": False,  # replaced by the guarded ping in `guard_engine`
        "pool_timeout": pool_timeout,
        "connect_args": {
            "connect_timeout": connect_timeout,
            "options": f"-c statement_timeout={statement_timeout_ms}",
            # A real partition (unacknowledged packets) is also noticed by the kernel.
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 2,
            "tcp_user_timeout": (connect_timeout + statement_timeout_ms // 1000) * 1000,
        },
    }


def _timed(call, watchdog: Watchdog):
    def timed(dbapi_connection):
        watchdog.begin(dbapi_connection)
        try:
            return call(dbapi_connection)
        finally:
            watchdog.end(dbapi_connection)

    return timed


def guard_engine(engine: Engine, deadline: float) -> Watchdog:
    """Put every statement, commit, rollback and pool ping of `engine` under a `deadline` (seconds)."""
    watchdog = Watchdog(deadline)

    def dbapi(conn):
        try:
            return conn.connection.dbapi_connection
        except Exception:  # closed or invalidated: nothing left to wait on
            return None

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        watchdog.begin(dbapi(conn))

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        watchdog.end(dbapi(conn))

    @event.listens_for(engine, "handle_error")
    def _error(context):
        if context.connection is not None:
            watchdog.end(dbapi(context.connection))

    # COMMIT and ROLLBACK are timed while they run, not until check-in: a connection may stay checked out and
    # idle after its commit (an exclusive job's advisory-lock connection) and must not be cut then.
    dialect = engine.dialect
    for name in ("do_commit", "do_rollback"):
        setattr(dialect, name, _timed(getattr(dialect, name), watchdog))

    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection, record, reset_state):
        watchdog.begin(dbapi_connection)

    @event.listens_for(engine, "checkin")
    def _checkin(dbapi_connection, record):
        watchdog.end(dbapi_connection)
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "connect")
    def _fresh(dbapi_connection, record):
        record.info["fresh"] = True

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, proxy):
        # Pessimistic disconnect handling (SQLAlchemy's documented recipe), under the deadline, for a
        # connection that sat idle in the pool for PING_AFTER_IDLE_SECONDS or more (one in steady use was
        # just seen working: no round trip per request). A pooled connection that fails is replaced
        # (DisconnectionError: the pool retries with a new one); a new one that fails means the database is
        # not answering: an OperationalError, i.e. a 503.
        fresh = record.info.pop("fresh", False)
        if not fresh and time.monotonic() - record.info.get("idle_since", 0.0) < PING_AFTER_IDLE_SECONDS:
            return
        watchdog.begin(dbapi_connection, min(deadline, 2.0))
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            if dbapi_connection.info.transaction_status != 0:  # psycopg: not IDLE after the ping
                dbapi_connection.rollback()
        except Exception as exc:
            if fresh:
                raise OperationalError("SELECT 1", {}, exc) from exc
            raise DisconnectionError(f"stale database connection: {exc.__class__.__name__}") from exc
        finally:
            watchdog.end(dbapi_connection)

    return watchdog
