"""room-service's consumer: `user-events`, so deactivated users' tokens are refused within seconds."""

from __future__ import annotations

from flask import Flask

from servicekit.auth import revocation_handlers
from servicekit.consumer import EventConsumer

GROUP_ID = "room-service"
# The only producer believed on each topic (a forged envelope from anyone else is parked).
OWNERS = {"user-events": "user-service"}


def make_consumer(app: Flask) -> EventConsumer:
    return EventConsumer(app, GROUP_ID, {"user-events": revocation_handlers()}, owners=OWNERS)
