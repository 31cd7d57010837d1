"""Request and response schemas: the single source of validation and of the OpenAPI spec."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, EmailStr, Field, StringConstraints

from servicekit.pagination import PageEnvelope, PageQuery
from servicekit.validation import SINGLE_LINE, PartialUpdate, Substring
from servicekit.validation import StrictModel as Strict

Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
FullName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SINGLE_LINE]
Email = Annotated[EmailStr, AfterValidator(lambda value: value.lower()), Field(max_length=320)]


class RegisterRequest(Strict):
    email: Email
    password: Password
    full_name: FullName


class LoginRequest(Strict):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RefreshRequest(Strict):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class UserUpdate(PartialUpdate):
    """PUT /api/users/{id}: any subset. role and is_active are for admins only."""

    NULLABLE = frozenset({"password", "current_password"})  # a null password changes nothing

    full_name: FullName | None = None
    password: Password | None = None
    current_password: Annotated[str, StringConstraints(max_length=256)] | None = None
    role: Literal["user", "admin"] | None = None
    is_active: bool | None = None


class UserListQuery(PageQuery):
    role: Literal["user", "admin"] | None = None
    is_active: bool | None = None
    q: Substring | None = Field(None, description="case-insensitive substring of the e-mail or name")


class BookingStats(BaseModel):
    total_reservations: int
    confirmed_reservations: int
    upcoming_reservations: int
    cancelled_reservations: int


class UserOut(BaseModel):
    id: int
    email: str
    full_name: str
    role: Literal["user", "admin"]
    is_active: bool
    created_at: datetime
    booking_stats: BookingStats | None = Field(None, description="Shown to admins only.")


class UserPage(PageEnvelope):
    items: list[UserOut]


class Tokens(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="seconds until the access token expires")


SCHEMAS = [RegisterRequest, LoginRequest, RefreshRequest, UserUpdate, UserOut, UserPage, Tokens, BookingStats]
