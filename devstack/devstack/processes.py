"""Child processes that die with the launcher, and small port helpers."""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import socket
import subprocess
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def as_user(user: str | None) -> dict:
    """subprocess arguments that drop to `user` entirely (uid, gid and supplementary groups)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


class StartError(RuntimeError):
    """A component could not start; the message is one line for the user."""


def _die_with_parent() -> None:
    # If the launcher is killed outright, the kernel sends SIGTERM to its children.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass
    os.setpgrp()


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_free_port(port: int, what: str) -> None:
    if not port_is_free(port):
        raise StartError(
            f"port {port} is already in use, so {what} cannot start there (stop whatever holds it, or choose another port)"
        )


def wait_for_port(port: int, proc: Child, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise StartError(
                f"{what} exited during start-up (code {proc.popen.returncode}); see {proc.log_path}: {proc.last_line()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise StartError(f"{what} did not open port {port} within {timeout:.0f}s; see {proc.log_path}")


class Child:
    """A supervised child process whose output goes to a log file."""

    def __init__(
        self,
        name: str,
        args: list[str],
        log_path: Path,
        *,
        env: dict | None = None,
        cwd: Path | None = None,
        user: str | None = None,
    ):
        self.name = name
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        try:
            self.popen = subprocess.Popen(
                args,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=cwd,
                preexec_fn=_die_with_parent,
                **as_user(user),
            )
        except OSError as exc:
            self._log.close()
            raise StartError(f"{name} could not be started: {exc}") from None

    def last_line(self) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1][:300] if lines else ""

    def running(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()
