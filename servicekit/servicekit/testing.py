"""pytest fixtures shared by the services' suites: a reader of real Kafka topics, the running app, spec checks."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer

from .kafka import consumer_config


class TopicReader:
    """Reads a topic from the beginning with a fresh consumer group."""

    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap

    def collect(
        self,
        topic: str,
        predicate: Callable[[str | None, dict], bool],
        *,
        expect: int = 1,
        timeout: float = 30.0,
        settle: float = 0.0,
    ) -> list[dict]:
        """Messages (as dicts) on `topic` matching predicate(key, value); waits until `expect` arrived, then `settle` more seconds."""
        consumer = Consumer(consumer_config(self.bootstrap, f"test-{uuid.uuid4().hex}", "test-reader"))
        consumer.subscribe([topic])
        found: list[dict] = []
        deadline = time.monotonic() + timeout
        settle_until = None
        try:
            while time.monotonic() < deadline:
                if settle_until is not None and time.monotonic() >= settle_until:
                    break
                message = consumer.poll(0.2)
                if message is None or message.error():
                    continue
                key = message.key().decode() if message.key() else None
                try:
                    value = json.loads(message.value())
                except ValueError:
                    continue
                if predicate(key, value):
                    found.append(value)
                    if len(found) >= expect and settle_until is None:
                        settle_until = time.monotonic() + settle
        finally:
            consumer.close()
        return found

    def produce(self, topic: str, key: str, value: bytes) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap})
        producer.produce(topic, key=key.encode(), value=value)
        assert producer.flush(10) == 0, "the test producer could not deliver"


def running_app(create_app, config, *, background: bool = True):
    """Generator for a session fixture: the app on its migrated database, its relay and consumers running."""
    from flask_migrate import upgrade

    app = create_app(config)
    app.config["TESTING"] = True
    with app.app_context():
        upgrade()
    workers = app.extensions["servicekit.background"]
    if background:
        workers.start()
    try:
        yield app
    finally:
        if background:
            workers.stop()


def truncate_tables(app, tables: str) -> None:
    """Empty the service's tables between tests (the schema stays; sequences go on).

    The service's consumers keep running meanwhile, so a deadlock with one of their
    transactions is possible: PostgreSQL breaks it and we try again."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    from .db import db

    with app.app_context():
        for attempt in range(5):
            db.session.remove()
            try:
                db.session.execute(text(f"TRUNCATE {tables} CASCADE"))
                db.session.commit()
                return
            except OperationalError:
                db.session.rollback()
                if attempt == 4:
                    raise
                time.sleep(0.2)


@pytest.fixture(scope="session")
def topics(infrastructure) -> TopicReader:
    return TopicReader(infrastructure.bootstrap)


def wait_until(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.1, message: str = "condition"):
    """Poll `condition` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def wait_until_blocked_by(database_url: str, blocker, message: str) -> None:
    """Wait until another session waits on a lock held by the open transaction of connection `blocker`:
    a race test's second writer has really reached the database (e.g. an exclusion constraint), whatever
    the machine's speed, instead of sleeping and hoping."""
    import psycopg

    pid = blocker.info.backend_pid
    with psycopg.connect(database_url, autocommit=True) as watcher:
        wait_until(
            lambda: watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", (pid,)
            ).fetchone()[0],
            message=message,
        )


def assert_models_match_migrations(app) -> None:
    """Alembic's autogenerate, run against the database the migrations made, finds nothing to change:
    the ORM models and the hand-written migrations declare the same tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from .db import db

    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
    assert differences == [], f"models and migrations differ: {differences}"


def resolved(spec: dict, node: dict) -> dict:
    """`node` of an OpenAPI document with its `$ref` followed (a component response, schema or parameter)."""
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = spec["components"][kind][name]
    return node


def assert_documented_and_valid(app) -> dict:
    """The app's OpenAPI documents are valid OpenAPI 3.0; the public one documents every `/api/` route and
    method and nothing else (it is what the gateway serves), the operator's one also `/internal/`."""
    from openapi_spec_validator import validate

    spec = app.test_client().get("/apispec.json").get_json()
    everything = app.test_client().get("/apispec-all.json").get_json()
    validate(spec)
    validate(everything)
    assert all(path.startswith("/api/") for path in spec["paths"]), "the public spec lists paths the gateway does not route"
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule.startswith("/internal/")):
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        documented = spec if rule.rule.startswith("/api/") else everything
        assert path in documented["paths"], f"{path} is not documented"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation = documented["paths"][path].get(method.lower())
            assert operation, f"{method} {path} is not documented"
            assert operation.get("responses"), f"{method} {path} documents no responses"
    return spec


def assert_fits_schema(spec: dict, name: str, instance) -> None:
    """`instance` (an answer's body) is valid against the component schema `name` of `spec`, read as strictly
    as OpenAPI 3.0.3 says (e.g. `nullable` counts only beside a `type`), as a client's generated code would."""
    from openapi_schema_validator import OAS30Validator

    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in OAS30Validator(schema).iter_errors(instance)
    ]
    assert not errors, f"not a valid {name}: {errors}"


def _b64url(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _malformed_token(header: object, claims: object = None) -> str:
    claims = {"sub": "1", "role": "admin", "typ": "access"} if claims is None else claims
    return f"Bearer {_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}.c2lnbmF0dXJl"


# Authorization headers no route may answer with a 5xx: garbage, unknown schemes, and JWTs whose header
# is wrong in every way PyJWT or the JWKS client might trip over (non-string kid, unknown crit, ...).
MALFORMED_AUTHORIZATION = [
    "Bearer",
    "Bearer ",
    "Basic YWRtaW46YWRtaW4=",
    "Bearer a.b",
    "Bearer a.b.c.d",
    "Bearer ....",
    "Bearer " + "x" * 8000,
    "Bearer \u00e9\u00e9.\u00e9.\u00e9",
    "Bearer " + _b64url(b"\xff\xfe\x00") + ".e30.c2ln",
    "Bearer " + _b64url(b"[]") + ".e30.c2ln",
    "Bearer " + _b64url(b"null") + ".e30.c2ln",
    "Bearer " + _b64url(b'"alg"') + ".e30.c2ln",
    _malformed_token({"alg": "EdDSA", "kid": 1}),
    _malformed_token({"alg": "EdDSA", "kid": ["k"]}),
    _malformed_token({"alg": "EdDSA", "kid": {"k": 1}}),
    _malformed_token({"alg": "EdDSA", "kid": None}),
    _malformed_token({"alg": "EdDSA", "kid": "k", "crit": ["exp"]}),
    _malformed_token({"alg": "EdDSA", "kid": "k", "crit": "b64"}),
    _malformed_token({"alg": "EdDSA", "kid": "k", "crit": []}),
    _malformed_token({"alg": "EdDSA", "kid": "k", "b64": False, "crit": ["b64"]}),
    _malformed_token({"alg": ["EdDSA"], "kid": "k"}),
    _malformed_token({"alg": "none"}),
    _malformed_token({"alg": "HS256", "kid": "k"}),
    _malformed_token({"alg": "EdDSA", "kid": "k"}, claims=[1, 2]),
    _malformed_token({"alg": "EdDSA", "kid": "k"}, claims="x"),
    _malformed_token({"alg": "EdDSA", "kid": "k", "jku": "http://attacker.invalid/jwks"}),
]


def assert_malformed_tokens_are_refused(app) -> None:
    """Every route, called with each of MALFORMED_AUTHORIZATION: never a 5xx, always problem+json."""
    client = app.test_client()
    for rule in app.url_map.iter_rules():
        if not (rule.rule.startswith("/api/") or rule.rule.startswith("/internal/")):
            continue
        path = re.sub(r"<int:[^>]+>", "1", rule.rule)
        path = re.sub(r"<[^>]+>", "x", path)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for authorization in MALFORMED_AUTHORIZATION:
                response = client.open(path, method=method, json={}, headers={"Authorization": authorization})
                where = f"{method} {path} with Authorization {authorization[:60]!r}"
                assert response.status_code < 500, f"{where} -> {response.status_code}: {response.get_data(as_text=True)[:300]}"
                if response.status_code >= 400:
                    assert response.content_type.startswith("application/problem+json"), where


def assert_no_server_errors(
    app, headers: dict, *, max_examples: int = 15, minimum_operations: int = 1, allowed: frozenset[int] = frozenset()
) -> None:
    """Requests generated from the app's OpenAPI document (schemathesis + hypothesis): none gets a 5xx
    (but the documented ones in `allowed`), and every error is problem+json. Every route is also called
    with malformed Authorization headers (`assert_malformed_tokens_are_refused`)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    assert_malformed_tokens_are_refused(app)

    operations = [result.ok() for result in schemathesis.openapi.from_wsgi("/apispec-all.json", app).get_all_operations()]
    assert len(operations) >= minimum_operations
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(headers=headers)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500 or response.status_code in allowed, (
                f"{where} -> {response.status_code}: {response.text[:300]}"
            )
            if response.status_code >= 400:
                content_type = {name.lower(): value for name, value in response.headers.items()}.get("content-type")
                content_type = content_type[0] if isinstance(content_type, list) else content_type
                assert content_type.startswith("application/problem+json"), f"{where}: {content_type}"

        check()


# --- what every service suite's conftest needs, written once ------------------------------------------


def service_env(infrastructure, database_url: str, **env: str) -> dict[str, str]:
    """The environment of a service under test: its fresh database, the test broker, quiet logs; `env` adds
    the service's own variables (or overrides these)."""
    return {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": infrastructure.bootstrap, "LOG_LEVEL": "WARNING", **env}


def service_fixtures(create_app, tables: str, *, background: bool = True) -> tuple:
    """A service suite's `app` (session-wide, built by `create_app` from the suite's `config` fixture on its
    migrated database, with its background workers running unless `background` is False), `client`, and
    `_clean_tables` (autouse: empties `tables` after each test). In the suite's conftest:
    `app, client, _clean_tables = service_fixtures(create_app, TABLES)`."""

    @pytest.fixture(scope="session", name="app")
    def app_fixture(config):
        yield from running_app(create_app, config, background=background)

    @pytest.fixture(name="client")
    def client_fixture(app):
        return app.test_client()

    @pytest.fixture(autouse=True, name="_clean_tables")
    def clean_tables_fixture(app):
        yield
        truncate_tables(app, tables)

    return app_fixture, client_fixture, clean_tables_fixture


def count_rows(app, model, *criteria) -> int:
    """How many rows of `model` match `criteria` (SQLAlchemy expressions, all of them), in the app's database."""
    from sqlalchemy import func, select

    from .db import db

    with app.app_context():
        return db.session.execute(select(func.count()).select_from(model).where(*criteria)).scalar_one()


# --- race tests: a second writer that really reaches the database ---------------------------------------


def libpq_url(database_url: str) -> str:
    """A SQLAlchemy `postgresql+psycopg://` URL as psycopg.connect takes it."""
    return database_url.replace("postgresql+psycopg://", "postgresql://")


class InFlight:
    """A request sent on a thread of its own, e.g. the second writer of a race test."""

    def __init__(self, send: Callable[[], object]):
        import threading

        self._answers: list = []
        self._thread = threading.Thread(target=lambda: self._answers.append(send()), daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def response(self, timeout: float = 20.0):
        """The request's answer; fails the test if none came within `timeout` seconds."""
        self._thread.join(timeout)
        if not self._answers:
            pytest.fail(f"the request in flight did not answer within {timeout}s")
        return self._answers[0]


def send_blocked_by(database_url: str, blocker, send: Callable[[], object], message: str) -> InFlight:
    """Send a request (`send`) on a thread of its own and go on once it waits on a lock held by the open
    transaction of psycopg connection `blocker`, still unanswered: it has passed every check made before
    that lock, however slow the machine (`wait_until_blocked_by`)."""
    request = InFlight(send)
    wait_until_blocked_by(libpq_url(database_url), blocker, message)
    assert request.is_alive(), f"the request answered instead of waiting: {message}"
    return request


def statuses_of_writes_racing_at_a_row_lock(
    database_url: str, table: str, row_id: int, writes: list[Callable[[], object]]
) -> list[int]:
    """Hold row `row_id` of `table` FOR UPDATE, send each of `writes` (requests) on a thread of its own, wait
    until every one of them waits on a row lock (so each has passed any check made before taking it), let
    them go: their status codes, sorted. Two writes with the same ETag must answer [200, 412]."""
    import psycopg

    url = libpq_url(database_url)
    with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as probe:
        blocker.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", (row_id,))
        requests = [InFlight(write) for write in writes]

        def waiting_on_the_lock() -> int:
            # The first writer waits on our transaction, the others on the first one's tuple lock.
            query = "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')"
            return probe.execute(query).fetchone()[0]

        wait_until(lambda: waiting_on_the_lock() >= len(writes), message=f"{len(writes)} writes to wait on the row lock")
        blocker.rollback()
    return sorted(request.response().status_code for request in requests)
