"""A read request (GET, HEAD, OPTIONS) runs without a transaction, and may not write; other methods keep theirs."""

from __future__ import annotations

import pytest
from conftest import KitTestConfig
from flask import jsonify
from sqlalchemy import select, text

from servicekit.app import create_service_app
from servicekit.db import RevokedUser, db, utcnow
from servicekit.openapi import build_spec

# Two statements a little apart: in one transaction now() is the transaction's start both times; without one,
# each statement is its own transaction and the second now() is later.
_TWO_NOWS = ("SELECT now()", "SELECT pg_sleep(0.02)", "SELECT now()")


@pytest.fixture(scope="module")
def reads_app(fresh_database, infrastructure):
    config = KitTestConfig.from_env(
        {"DATABASE_URL": fresh_database("kit_reads"), "KAFKA_BOOTSTRAP_SERVERS": infrastructure.bootstrap, "LOG_LEVEL": "WARNING"}
    )
    app = create_service_app(__name__, config, openapi=build_spec("kit-reads", "kit reads", []))

    def two_nows():
        first, _, second = (db.session.execute(text(sql)).scalar() for sql in _TWO_NOWS)
        return jsonify(same=first == second)

    app.add_url_rule("/nows", "nows_get", two_nows, methods=["GET"])
    app.add_url_rule("/nows", "nows_post", two_nows, methods=["POST"])

    @app.get("/sneaky-orm-write")
    def sneaky_orm_write():
        db.session.add(RevokedUser(user_id="reads-orm", revoked_at=utcnow()))
        db.session.commit()
        return jsonify(written=True)

    @app.get("/sneaky-sql-write")
    def sneaky_sql_write():
        db.session.execute(RevokedUser.__table__.insert().values(user_id="reads-sql", revoked_at=utcnow()))
        return jsonify(written=True)

    with app.app_context():
        db.create_all()
    return app


def test_a_get_runs_each_statement_on_its_own_and_a_post_in_one_transaction(reads_app):
    client = reads_app.test_client()
    assert client.get("/nows").get_json() == {"same": False}
    assert client.post("/nows").get_json() == {"same": True}


@pytest.mark.parametrize("path", ["/sneaky-orm-write", "/sneaky-sql-write"])
def test_a_get_that_writes_fails_and_writes_nothing(reads_app, path):
    response = reads_app.test_client().get(path)
    assert response.status_code == 500 and response.content_type == "application/problem+json"
    with reads_app.app_context():
        assert db.session.execute(select(RevokedUser).where(RevokedUser.user_id.like("reads-%"))).first() is None
