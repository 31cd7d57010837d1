"""`?page=&per_page=` parsing and the `{"items", "page", "per_page", "total"}` envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

MAX_PER_PAGE = 100


class PageQuery(BaseModel):
    """Pagination parameters; list endpoints extend it with their filters."""

    model_config = ConfigDict(extra="forbid")

    page: int = Field(1, ge=1, le=1_000_000)
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE)


def paginate(session: Session, stmt: Select, query: PageQuery, serialize: Callable[[Any], dict]) -> dict[str, Any]:
    """Run `stmt` for one page and count all its rows."""
    total = session.execute(select(func.count()).select_from(stmt.order_by(None).subquery())).scalar_one()
    rows = session.execute(stmt.limit(query.per_page).offset((query.page - 1) * query.per_page)).scalars().all()
    return {"items": [serialize(row) for row in rows], "page": query.page, "per_page": query.per_page, "total": total}
