"""The bare baseline the platform is measured against: Flask, one PostgreSQL database, no kit.

Same process model as the services (gunicorn with `servicekit.gunicorn_conf`, the same driver and
pool), and nothing else: `GET /ping`, `POST /insert` (one INSERT), `GET /select` (20 rows), `GET /select-one`
(one row by primary key: the least any endpoint that reads the database can cost, e.g. `users/me`).
Run by bench/platform_bench.py: `gunicorn -c python:servicekit.gunicorn_conf "baseline_app:create_app()"`.
"""

from __future__ import annotations

import os

from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text

SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id bigserial PRIMARY KEY,
    title varchar(200) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""


def create_app() -> Flask:
    engine = create_engine(os.environ["DATABASE_URL"], pool_size=10, max_overflow=5, pool_pre_ping=True)
    with engine.begin() as conn:
        # Each gunicorn process runs this: one at a time (concurrent CREATE TABLE IF NOT EXISTS can collide in pg_type).
        conn.execute(text("SELECT pg_advisory_xact_lock(4242)"))
        conn.execute(text(SCHEMA))
    app = Flask(__name__)

    @app.get("/ping")
    def ping():
        return jsonify(status="ok")

    @app.post("/insert")
    def insert():
        title = (request.get_json(silent=True) or {}).get("title", "baseline")
        with engine.begin() as conn:
            row = conn.execute(
                text("INSERT INTO items (title) VALUES (:title) RETURNING id, title, created_at"), {"title": title}
            ).one()
        return jsonify(id=row.id, title=row.title, created_at=row.created_at.isoformat()), 201

    @app.get("/select")
    def select_rows():
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, title, created_at FROM items ORDER BY id LIMIT 20")).all()
        return jsonify(items=[{"id": r.id, "title": r.title, "created_at": r.created_at.isoformat()} for r in rows])

    @app.get("/select-one")
    def select_one():
        with engine.connect() as conn:
            row = conn.execute(text("SELECT id, title, created_at FROM items ORDER BY id LIMIT 1")).one_or_none()
        if row is None:  # before the first /insert: the same read, nothing found
            return jsonify(item=None)
        return jsonify(item={"id": row.id, "title": row.title, "created_at": row.created_at.isoformat()})

    return app
