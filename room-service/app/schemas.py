"""Request and response schemas: the single source of validation and of the OpenAPI spec."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from servicekit.pagination import PageQuery

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Capacity = Annotated[int, Field(ge=1, le=10_000)]
Location = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=2000)]
EquipmentName = Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=50)]


def _dedupe(names: list[str]) -> list[str]:
    return sorted(set(names))


EquipmentList = Annotated[list[EquipmentName], Field(max_length=50), AfterValidator(_dedupe)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RoomCreate(Strict):
    name: Name = Field(description="unique among rooms (case-insensitive)")
    capacity: Capacity
    location: Location = ""
    equipment: EquipmentList = Field(default_factory=list, description='names; "Projector" and "projector" are one')
    description: Description = ""
    is_active: bool = True


class RoomUpdate(Strict):
    """PUT: any subset of the fields."""

    name: Name | None = None
    capacity: Capacity | None = None
    location: Location | None = None
    equipment: EquipmentList | None = None
    description: Description | None = None
    is_active: bool | None = None


class RoomListQuery(PageQuery):
    min_capacity: Capacity | None = None
    equipment: list[EquipmentName] = Field(
        default_factory=list, max_length=20, description="repeatable; every one must be present"
    )
    location: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = Field(
        None, description="case-insensitive substring"
    )
    is_active: bool | None = None


class RoomOut(BaseModel):
    id: int
    name: str
    capacity: int
    location: str
    equipment: list[str]
    description: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


class RoomPage(BaseModel):
    items: list[RoomOut]
    page: int
    per_page: int
    total: int
    total_is_estimate: bool = Field(
        description="true when `total` is PostgreSQL's estimate: rows are counted exactly up to 1,000 only"
    )


class InternalRoom(RoomOut):
    """For reservation-service: also deleted rooms, so it can tell them from unknown ones."""

    deleted: bool


SCHEMAS = [RoomCreate, RoomUpdate, RoomOut, RoomPage, InternalRoom]
