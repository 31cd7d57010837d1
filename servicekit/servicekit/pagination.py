"""`?page=&per_page=` parsing and the `{"items", "page", "per_page", "total", "total_is_estimate"}` envelope.

A page never counts the whole table: rows are counted exactly up to `COUNT_CAP`; beyond it
`total` is PostgreSQL's planner estimate (at least `COUNT_CAP + 1`) and `total_is_estimate` is true.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
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
    per_page: int = Field(
        20, ge=1, description=f"rows per page, capped at {MAX_PER_PAGE}: a larger value is taken as {MAX_PER_PAGE}"
    )

    @field_validator("per_page")
    @classmethod
    def _capped(cls, per_page: int) -> int:
        """API.md: "per_page capped at 100": asked for more, a client gets a page of 100 (and `per_page`: 100)."""
        return min(per_page, MAX_PER_PAGE)


class FilteredList:
    """A list endpoint's statements per combination of the filters a request gives, built once and kept, with
    the filters' values bound per request: the page statement, its EXPLAIN (for an estimated total) and
    SQLAlchemy's cache key of each are then made once per shape too, instead of for every request.

    `base()` builds the unfiltered statement (its ORDER BY included). Each filter builds its condition with
    `bindparam(<its name>)` (and may use other bound names, given among the values); a filter applies when its
    value is not None."""

    def __init__(self, base: Callable[[], Select], **filters: Callable[[], ColumnElement[bool]]):
        self._base = base
        self._filters = filters
        self._shapes: dict[tuple[str, ...], _Shape] = {}  # at most 2 ** len(filters)
        self._lock = threading.Lock()

    def _shape(self, values: Mapping[str, Any]) -> tuple[_Shape, dict[str, Any]]:
        given = {name: value for name, value in values.items() if value is not None}
        key = tuple(name for name in self._filters if name in given)
        shape = self._shapes.get(key)
        if shape is None:
            with self._lock:
                shape = self._shapes.get(key)
                if shape is None:
                    shape = self._shapes[key] = _Shape(self._base().where(*(self._filters[name]() for name in key)))
        return shape, given

    def page(
        self,
        session: Session,
        query: PageQuery,
        values: Mapping[str, Any],
        serialize: Callable[[Any], dict],
        *,
        scalars: bool = True,
    ) -> dict[str, Any]:
        """One page of the rows that pass the filters given in `values`, and their total (exactly up to
        COUNT_CAP, else estimated). `serialize` gets each ORM object (`scalars`), or each row when the statement
        selects columns.

        One round trip: the capped count rides along with the page as a scalar subquery (PostgreSQL runs it
        once). Only an empty page past the end, or a total beyond COUNT_CAP (the planner's estimate), needs
        another."""
        shape, parameters = self._shape(values)
        offset = (query.page - 1) * query.per_page
        cap = COUNT_CAP
        result = session.execute(
            shape.page_statement(cap), {**parameters, "page_limit": query.per_page, "page_offset": offset}
        ).all()
        rows = [row[0] for row in result] if scalars else result
        if len(rows) < query.per_page and (rows or offset == 0):
            total, estimated = offset + len(rows), False  # the last page tells the total
        elif result and result[0].capped_total <= cap:
            total, estimated = result[0].capped_total, False
        elif result:
            total, estimated = max(cap + 1, shape.estimate(session, parameters)), True
        else:  # a page past the end: count on its own
            total, estimated = count_rows(session, shape.stmt, cap, parameters=parameters)
        if estimated:  # never fewer than the rows already served (the planner can guess low)
            total = max(total, offset + len(rows) + 1)
        return {
            "items": [serialize(row) for row in rows],
            "page": query.page,
            "per_page": query.per_page,
            "total": total,
            "total_is_estimate": estimated,
        }


class _Shape:
    """One filter shape of a `FilteredList`: its statement, and what is derived from it, each made once (a race
    between two first requests builds one twice; either result is right)."""

    def __init__(self, stmt: Select):
        self.stmt = stmt
        self._pages: dict[int, Select] = {}
        self._explain: tuple[Any, str, dict] | None = None  # (dialect, SQL, its parameters' own values)

    def page_statement(self, cap: int) -> Select:
        """The statement with its count capped at `cap` beside each row, LIMIT :page_limit OFFSET :page_offset."""
        page = self._pages.get(cap)
        if page is None:
            capped = (
                select(func.count())
                .select_from(self.stmt.order_by(None).limit(cap + 1).subquery())
                .scalar_subquery()
                .label("capped_total")
            )
            page = self._pages[cap] = (
                self.stmt.add_columns(capped).limit(bindparam("page_limit")).offset(bindparam("page_offset"))
            )
        return page

    def estimate(self, session: Session, parameters: Mapping[str, Any]) -> int:
        """`planner_estimate`, its EXPLAIN compiled once (a list beyond COUNT_CAP asks on every page)."""
        dialect = session.get_bind().dialect
        if self._explain is None or self._explain[0] is not dialect:
            self._explain = (dialect, *_explain(self.stmt, dialect))
        _dialect, sql, defaults = self._explain
        return _estimated_rows(session, sql, {**defaults, **parameters})


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
    return _estimated_rows(session, sql, {**defaults, **(parameters or {})})


def _explain(stmt: Select, dialect) -> tuple[str, dict]:
    """The EXPLAIN of `stmt` without its ORDER BY, and its bound parameters' own values."""
    compiled = stmt.order_by(None).compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return f"EXPLAIN (FORMAT JSON) {compiled}", dict(compiled.params)


def _estimated_rows(session: Session, explain_sql: str, values: Mapping[str, Any]) -> int:
    plan = session.connection().exec_driver_sql(explain_sql, dict(values)).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])
