"""`?page=&per_page=` parsing and the `{"items", "page", "per_page", "total", "total_is_estimate"}` envelope.

A page never counts the whole table: rows are counted exactly up to `COUNT_CAP`; beyond it
`total` is PostgreSQL's planner estimate (at least `COUNT_CAP + 1`) and `total_is_estimate` is true.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ColumnElement, Select, bindparam, func, select
from sqlalchemy.orm import Session

MAX_PER_PAGE = 100
# Exact totals up to this many rows: counting them (an index scan) stays well under a millisecond.
COUNT_CAP = 1_000


class PageEnvelope(BaseModel):
    """The list envelope beside `items`; a service's page schema adds `items: list[ItsOut]`."""

    page: int
    per_page: int
    total: int
    total_is_estimate: bool = Field(
        description=f"true when `total` is PostgreSQL's estimate: rows are counted exactly up to {COUNT_CAP:,} only"
    )


class PageQuery(BaseModel):
    """Pagination parameters; list endpoints extend it with their filters."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE)


class FilteredList:
    """A list endpoint's statement per combination of the filters a request gives, built once and kept, with
    the filters' values bound per request: the page statement and SQLAlchemy's cache key of each shape are then
    made once too (`_page_of`), instead of for every request.

    `base()` builds the unfiltered statement (its ORDER BY included). Each filter builds its condition with
    `bindparam(<its name>)` (and may use other bound names, given among the values); a filter applies when its
    value is not None."""

    def __init__(self, base: Callable[[], Select], **filters: Callable[[], ColumnElement[bool]]):
        self._base = base
        self._filters = filters
        self._shapes: dict[tuple[str, ...], Select] = {}  # at most 2 ** len(filters)
        self._lock = threading.Lock()

    def statement(self, values: Mapping[str, Any]) -> tuple[Select, dict[str, Any]]:
        """The statement for the filters whose value is given, and the values to bind."""
        given = {name: value for name, value in values.items() if value is not None}
        shape = tuple(name for name in self._filters if name in given)
        stmt = self._shapes.get(shape)
        if stmt is None:
            with self._lock:
                stmt = self._shapes.get(shape)
                if stmt is None:
                    stmt = self._shapes[shape] = self._base().where(*(self._filters[name]() for name in shape))
        return stmt, given

    def page(
        self,
        session: Session,
        query: PageQuery,
        values: Mapping[str, Any],
        serialize: Callable[[Any], dict],
        *,
        scalars: bool = True,
    ) -> dict[str, Any]:
        """One page (`paginate`) of the rows that pass the filters given in `values`."""
        stmt, parameters = self.statement(values)
        return paginate(session, stmt, query, serialize, scalars=scalars, parameters=parameters)


def paginate(
    session: Session,
    stmt: Select,
    query: PageQuery,
    serialize: Callable[[Any], dict],
    *,
    scalars: bool = True,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run `stmt` for one page, and total its rows (exactly up to COUNT_CAP, else estimated).
    `serialize` gets each ORM object (`scalars`), or each row when `stmt` selects columns. `parameters`: the
    values of `stmt`'s own bound parameters, for a statement built once per filter shape (see `_page_of`).

    One round trip: the capped count rides along with the page as a scalar subquery (PostgreSQL runs it once).
    Only an empty page past the end, or a total beyond COUNT_CAP (the planner's estimate), needs another."""
    offset = (query.page - 1) * query.per_page
    values = {**(parameters or {}), "page_limit": query.per_page, "page_offset": offset}
    result = session.execute(_page_of(stmt, COUNT_CAP), values).all()
    rows = [row[0] for row in result] if scalars else result
    if len(rows) < query.per_page and (rows or offset == 0):
        total, estimated = offset + len(rows), False  # the last page tells the total
    elif result and result[0].capped_total <= COUNT_CAP:
        total, estimated = result[0].capped_total, False
    elif result:
        total, estimated = max(COUNT_CAP + 1, planner_estimate(session, stmt, parameters)), True
    else:  # a page past the end: count on its own
        total, estimated = count_rows(session, stmt, parameters=parameters)
    if estimated:  # never fewer than the rows already served (the planner can guess low)
        total = max(total, offset + len(rows) + 1)
    return {
        "items": [serialize(row) for row in rows],
        "page": query.page,
        "per_page": query.per_page,
        "total": total,
        "total_is_estimate": estimated,
    }


@functools.lru_cache(maxsize=256)
def _page_of(stmt: Select, cap: int) -> Select:
    """`stmt` with its count capped at `cap` beside each row, LIMIT :page_limit OFFSET :page_offset. Kept per statement
    object: a caller that builds its statement once (per filter shape) gets the same page statement back,
    whose cache key SQLAlchemy then generates once, not on every request (a tenth of a room list's CPU)."""
    capped = (
        select(func.count()).select_from(stmt.order_by(None).limit(cap + 1).subquery()).scalar_subquery().label("capped_total")
    )
    return stmt.add_columns(capped).limit(bindparam("page_limit")).offset(bindparam("page_offset"))


def count_rows(
    session: Session, stmt: Select, cap: int | None = None, *, parameters: Mapping[str, Any] | None = None
) -> tuple[int, bool]:
    """(rows of `stmt`, whether that is an estimate): exact up to `cap` (COUNT_CAP), else the planner's estimate."""
    cap = COUNT_CAP if cap is None else cap
    counted = select(func.count()).select_from(stmt.order_by(None).limit(cap + 1).subquery())
    exact = session.execute(counted, dict(parameters or {})).scalar_one()
    if exact <= cap:
        return exact, False
    return max(cap + 1, planner_estimate(session, stmt, parameters)), True


def planner_estimate(session: Session, stmt: Select, parameters: Mapping[str, Any] | None = None) -> int:
    """PostgreSQL's estimate of the rows `stmt` (its order aside) returns (EXPLAIN: planned, not run)."""
    sql, defaults = _explain(stmt, session.get_bind().dialect)
    plan = session.connection().exec_driver_sql(sql, {**defaults, **(parameters or {})}).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


@functools.lru_cache(maxsize=256)
def _explain(stmt: Select, dialect) -> tuple[str, dict]:
    """The EXPLAIN of `stmt` without its ORDER BY, compiled once per statement object (a list beyond COUNT_CAP
    asks for it on every page), and its bound parameters' own values."""
    compiled = stmt.order_by(None).compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return f"EXPLAIN (FORMAT JSON) {compiled}", dict(compiled.params)
