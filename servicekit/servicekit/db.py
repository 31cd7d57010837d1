"""The one SQLAlchemy instance of a service, its kit tables, and their migration."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NoReturn, TypeVar

from flask import has_request_context, request
from flask_sqlalchemy import SQLAlchemy
from flask_sqlalchemy.session import Session as FlaskSession
from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    event,
    insert,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ReadOnlyRequestWrites(RuntimeError):
    """A GET (HEAD, OPTIONS) request tried to write: reads run without a transaction, so a write there is a bug."""


class ServiceSession(FlaskSession):
    """The session of a request reads without a transaction when the request is a read (GET, HEAD, OPTIONS).

    Under READ COMMITTED every statement takes its own snapshot anyway, so a read-only request gains nothing from
    a transaction but pays two round trips for it (BEGIN, and the ROLLBACK at teardown). A read request's
    statements run on an autocommit view of the same engine (same pool, same guards); a write attempted there
    (an ORM flush, or an INSERT/UPDATE/DELETE statement) raises `ReadOnlyRequestWrites`. Background work and
    every other method keep their transactions."""

    def get_bind(self, mapper=None, clause=None, bind=None, **kwargs):
        engine = super().get_bind(mapper=mapper, clause=clause, bind=bind, **kwargs)
        if has_request_context() and request.method in READ_METHODS and isinstance(engine, Engine):
            return _reading_view(engine)
        return engine


# One view per engine (a service has one; a test run a few): made once, with its guard listener registered once.
_reading_views: dict[Engine, Engine] = {}


def _reading_view(engine: Engine) -> Engine:
    view = _reading_views.get(engine)
    if view is None:
        view = engine.execution_options(isolation_level="AUTOCOMMIT")

        @event.listens_for(view, "before_cursor_execute")
        def _no_writes(_conn, _cursor, statement, _parameters, context, _executemany):
            if context is not None and (context.isinsert or context.isupdate or context.isdelete):
                raise ReadOnlyRequestWrites(f"a {request.method} request must not write: {statement[:80]}")

        _reading_views[engine] = view
    return view


# expire_on_commit=False: an object read or written in a request stays readable after the commit without
# another SELECT (a request commits, then serialises what it committed).
# No pool_pre_ping (a round trip on every checkout): servicekit.dbguard pings a connection only after it sat
# idle; pool_recycle retires connections before idle timeouts of proxies in between.
db = SQLAlchemy(
    model_class=Base,
    engine_options={"pool_size": 10, "max_overflow": 5, "pool_recycle": 1800},
    session_options={"expire_on_commit": False, "class_": ServiceSession},
)


_PENDING_EVENTS = "servicekit.pending_events"


def pending_events(session) -> list[dict]:
    """The outbox rows `record_event` gave this session's transaction, not yet written."""
    return session.info.setdefault(_PENDING_EVENTS, [])


def write_pending_events(session) -> None:
    """Write the pending outbox rows in one INSERT, after the session's own pending changes (flushed first,
    so the events' ids follow the changes they describe). Before a commit, and before a savepoint is released.
    A Core INSERT on the session's connection: the ORM's bulk-insert path cost a fifth of a booking's CPU."""
    rows = session.info.pop(_PENDING_EVENTS, None)
    if rows:
        session.flush()
        session.connection().execute(_INSERT_OUTBOX_EVENT, rows)


def discard_pending_events(session) -> None:
    """Forget the pending outbox rows: their transaction (or the savepoint they were recorded in) rolled back."""
    session.info.pop(_PENDING_EVENTS, None)


@event.listens_for(ServiceSession, "before_commit")
def _write_events_before_commit(session):
    write_pending_events(session)


@event.listens_for(ServiceSession, "after_transaction_end")
def _forget_events_of_an_ended_transaction(session, transaction):
    # The outermost transaction ended: committed (written just before), rolled back or closed (discarded).
    # A savepoint's end is its user's business (EventConsumer writes before releasing one, discards on rollback).
    if transaction.parent is None:
        discard_pending_events(session)


@event.listens_for(ServiceSession, "before_flush")
def _no_flush_in_reads(session, _flush_context, _instances):
    if has_request_context() and request.method in READ_METHODS and (session.new or session.dirty or session.deleted):
        raise ReadOnlyRequestWrites(f"a {request.method} request must not write")


@contextmanager
def violations_raise(on_violation: Mapping[str, Callable[[], Exception]]) -> Iterator[None]:
    """The violation of a constraint named in `on_violation`, by a statement run inside, raises what it makes
    (a 409 saying which rule); any other database error propagates unchanged.

    PostgreSQL aborts the transaction at the violation, so the session is rolled back before `make()` runs
    (it may read, e.g. the bookings in the way); the request's unit of work ends with the problem it raises."""
    try:
        yield
    except IntegrityError as exc:
        make = on_violation.get(getattr(getattr(exc.orig, "diag", None), "constraint_name", None))
        if make is None:
            raise
        db.session.rollback()
        raise make() from None


def flush_or_raise(on_violation: Mapping[str, Callable[[], Exception]]) -> None:
    """Flush the unit of work, under `violations_raise(on_violation)`."""
    with violations_raise(on_violation):
        db.session.flush()


DEADLOCK_DETECTED = "40P01"  # SQLSTATE
T = TypeVar("T")


def is_deadlock(exc: BaseException) -> bool:
    """Whether `exc` (a SQLAlchemy DBAPIError) is PostgreSQL aborting this transaction to break a deadlock: the
    other transaction goes on, so looking again after a rollback is the answer."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) == DEADLOCK_DETECTED


class LookAgain(Exception):  # noqa: N818 (an instruction to `retried`, not an error)
    """Raised inside a unit of work run by `retried`: what it found says roll back and look again (a rival
    committed, or went, between the look and the write)."""


def retried(
    work: Callable[[], T],
    *,
    attempts: int,
    exhausted: Callable[[], NoReturn],
    before_retry: Callable[[], None] | None = None,
) -> T:
    """Run `work`, one whole transaction (its locks, its look, its writes), until it completes: again, after a
    rollback, when PostgreSQL aborted it to break a deadlock (the other transaction goes on, so the next look
    sees it) or when it raised `LookAgain`. `before_retry` runs after each rollback (to take the locks again);
    after `attempts` tries, `exhausted()` raises the answer. Any other error propagates unchanged."""
    for attempt in range(attempts):
        if attempt:
            db.session.rollback()
            if before_retry is not None:
                before_retry()
        try:
            return work()
        except LookAgain:
            continue
        except OperationalError as exc:
            if not is_deadlock(exc):
                raise
    db.session.rollback()
    exhausted()


def utcnow() -> datetime:
    return datetime.now(UTC)


def delete_in_batches(table, condition, *, batch_size: int = 5000, max_batches: int = 20) -> int:
    """Delete the rows of `table` (a model or a Table) that meet `condition`, `batch_size` at a time, each batch
    committed in its own short transaction, at most `max_batches` of them; returns how many went. For retention
    jobs (in an app context): a large backlog, e.g. on the first run after an upgrade, never becomes one long
    transaction holding its row locks and holding back vacuum, nor holds up the scheduler's other jobs for long
    (the next run goes on with it). Index the condition's column, or each batch reads the table."""
    table: Table = getattr(table, "__table__", table)
    key = list(table.primary_key.columns)
    chosen = select(*key).where(condition).limit(batch_size)
    statement = delete(table).where((key[0] if len(key) == 1 else tuple_(*key)).in_(chosen))
    deleted = 0
    for _batch in range(max_batches):
        went = db.session.execute(statement).rowcount
        db.session.commit()
        deleted += went
        if went < batch_size:
            break
    return deleted


class OutboxEvent(db.Model):
    """An event written in the same transaction as the change it describes."""

    __tablename__ = "outbox_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(UUID(as_uuid=False), unique=True, nullable=False)
    topic: Mapped[str] = mapped_column(String(200), nullable=False)
    key: Mapped[str] = mapped_column(String(200), nullable=False)
    event_type: Mapped[str] = mapped_column(String(100), nullable=False)
    envelope: Mapped[dict] = mapped_column(JSONB, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_outbox_events_pending", "topic", "key", "id", postgresql_where=text("published_at IS NULL")),
        Index("ix_outbox_events_published_at", "published_at"),
    )


_INSERT_OUTBOX_EVENT = insert(OutboxEvent.__table__)


class ProcessedEvent(db.Model):
    """An event a consumer group has already applied: the idempotency record."""

    __tablename__ = "processed_events"

    consumer_group: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))

    # What the retention job (servicekit.consumer.forget_processed_events) deletes by.
    __table_args__ = (Index("ix_processed_events_processed_at", "processed_at"),)


class ParkedEvent(db.Model):
    """A message that could not be handled; kept for an operator instead of blocking the partition."""

    __tablename__ = "parked_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    consumer_group: Mapped[str] = mapped_column(String(200), nullable=False)
    topic: Mapped[str] = mapped_column(String(200), nullable=False)
    partition: Mapped[int] = mapped_column(Integer, nullable=False)
    offset: Mapped[int] = mapped_column(BigInteger, nullable=False)
    key: Mapped[str | None] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text, nullable=False)
    parked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


# `revoked_at` of a deactivated user: every token they hold is older than this.
DEACTIVATED = datetime(9999, 12, 31, tzinfo=UTC)


class RevokedUser(db.Model):
    """A user's token cut-off, learnt from `user-events`: their tokens issued before `revoked_at` are refused
    (all of them while the user is deactivated: `revoked_at` is then `DEACTIVATED`)."""

    __tablename__ = "revoked_users"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


def create_kit_tables(op) -> None:
    """Alembic migration step creating the kit's tables (every service's first migration calls it)."""
    import sqlalchemy as sa

    op.create_table(
        "outbox_events",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("event_id", UUID(as_uuid=False), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("envelope", JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_events"),
        sa.UniqueConstraint("event_id", name="uq_outbox_events_event_id"),
    )
    op.create_index(
        "ix_outbox_events_pending", "outbox_events", ["topic", "key", "id"], postgresql_where=sa.text("published_at IS NULL")
    )
    op.create_index("ix_outbox_events_published_at", "outbox_events", ["published_at"])
    op.create_table(
        "processed_events",
        sa.Column("consumer_group", sa.String(200), nullable=False),
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("consumer_group", "event_id", name="pk_processed_events"),
    )
    op.create_table(
        "parked_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("consumer_group", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text()),
        sa.Column("value", sa.Text()),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("id", name="pk_parked_events"),
    )
    op.create_table(
        "revoked_users",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("user_id", name="pk_revoked_users"),
    )


def create_index_concurrently(op, name: str, table: str, columns: list[str], **kwargs) -> None:
    """Alembic migration step: `op.create_index` built CONCURRENTLY, outside the migration's transaction, so
    the table's writers (requests, consumers, workers) go on while it builds on a large table."""
    with op.get_context().autocommit_block():
        op.create_index(name, table, columns, postgresql_concurrently=True, **kwargs)


def create_processed_events_index(op) -> None:
    """Alembic migration step (each service's `*_retention` migration calls it): the index the retention of
    `processed_events` deletes by."""
    create_index_concurrently(op, "ix_processed_events_processed_at", "processed_events", ["processed_at"])


def drop_processed_events_index(op) -> None:
    op.drop_index("ix_processed_events_processed_at", table_name="processed_events")


def drop_kit_tables(op) -> None:
    for table in ("revoked_users", "parked_events", "processed_events", "outbox_events"):
        op.drop_table(table)


def like_substring(value: str) -> str:
    """A LIKE pattern matching `value` anywhere, its wildcards taken literally (lower-cased)."""
    escaped = value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
