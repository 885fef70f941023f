"""A private PostgreSQL server for the tests of threads kept in a database.

``make postgres`` (a prerequisite of ``make test``) installs Debian's ``postgresql``
package when no server binaries are found; this module finds them, creates a
throw-away cluster in a temporary directory, starts it on a free loopback port and
stops it at the end of the session. Nothing here touches a system cluster.

- The binaries (``initdb``, ``pg_ctl``, next to ``postgres``) are looked for in
  ``pg_config --bindir``, then ``/usr/lib/postgresql/<version>/bin`` (Debian keeps
  them there, off PATH; the newest version first), then PATH.
- Postgres refuses to run as root: as root, ``initdb`` and ``pg_ctl`` run as the
  ``postgres`` system user the Debian package creates (``subprocess``'s ``user=``,
  as ``runuser -u postgres`` would), and the cluster's directory is owned by it.
  Otherwise they run as the current user.
- The cluster trusts local socket connections and asks TCP ones for a password
  (SCRAM), so a test can give a wrong one. The superuser is ``agentrt``.

The fixtures ``postgres_server`` (session: the running server) and ``postgres_url``
(per test: a fresh, empty database on it) reach a test module with
``from tests.support.postgres import postgres_server_fixture, postgres_url_fixture``
(``# noqa: F401``; the functions' names differ from the fixtures' so that a test's
argument does not shadow an import).
Without binaries, or as root without a ``postgres`` user, the tests that use them
skip and say why (with the tail of ``make postgres``'s install log when it failed).

``python -m tests.support.postgres`` prints the directory found, or why none was
(exit status 1): the Makefile asks it before installing anything.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "INSTALL_LOG",
    "PostgresServer",
    "PostgresUnavailable",
    "find_bindir",
    "free_port",
    "missing_reason",
    "postgres_server_fixture",
    "postgres_url_fixture",
    "running_server",
]

REQUIRED = ("initdb", "pg_ctl")
"""The programs a directory must hold, executable, to count as the server's bindir."""

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
SUPERUSER = "agentrt"
INSTALL_LOG = Path(__file__).resolve().parents[2] / ".venv" / "postgres-install.log"
"""Where ``make postgres`` writes apt's output when it had to install the package."""

START_TIMEOUT_S = 60
_PORT_ATTEMPTS = 3


class PostgresUnavailable(Exception):
    """No server can be started here; the message says why (a test skips with it)."""


def _holds_server(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in REQUIRED) and all(
        (directory / name).is_file() for name in REQUIRED
    )


def _version_key(directory: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/9.6`` < ``.../10`` < ``.../16``; odd names last."""
    numbers = re.findall(r"\d+", directory.name)
    return tuple(int(n) for n in numbers) if numbers else (-1,)


def _pg_config_bindir(pg_config: str | None) -> Path | None:
    if pg_config is None:
        return None
    try:
        done = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return Path(out) if done.returncode == 0 and out else None


def find_bindir(
    *,
    pg_config: str | None = "pg_config",
    debian_root: Path = DEBIAN_ROOT,
    path: str | None = None,
) -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or ``None``.

    Looked at in order: ``pg_config --bindir`` (``pg_config`` from PATH when
    ``True``, none when ``False``/``None``), ``<debian_root>/<version>/bin`` newest
    version first, then ``path`` (PATH when ``None``; symlinks resolved). A
    directory counts only if it holds both programs: Debian's ``pg_config`` comes
    with ``libpq-dev`` and names a bindir that has no server without
    ``postgresql-<version>``.
    """
    config = None if pg_config is None else shutil.which(pg_config, path=path)
    candidates: list[Path] = []
    found = _pg_config_bindir(config)
    if found is not None:
        candidates.append(found)
    if debian_root.is_dir():
        versions = sorted(
            (p for p in debian_root.iterdir() if p.is_dir()), key=_version_key, reverse=True
        )
        candidates += [v / "bin" for v in versions]
    initdb = shutil.which("initdb", path=path)
    if initdb is not None:
        # A link on PATH (/usr/local/bin/initdb -> .../bin/initdb): its target's
        # directory first, where pg_ctl and postgres live too.
        candidates += [Path(initdb).resolve().parent, Path(initdb).parent]
    return next((c for c in candidates if _holds_server(c)), None)


def missing_reason(install_log: Path = INSTALL_LOG) -> str:
    """Why no server binaries were found, and what ``make postgres`` said."""
    reason = (
        "PostgreSQL server binaries (initdb, pg_ctl) not found in `pg_config --bindir`, "
        f"{DEBIAN_ROOT}/*/bin or PATH; `make postgres` installs Debian's postgresql "
        "package (apt-get install postgresql)"
    )
    try:
        tail = [line for line in install_log.read_text(errors="replace").splitlines() if line]
    except OSError:
        return reason
    if tail:
        reason += f"; its install failed ({install_log}): {' | '.join(tail[-3:])}"
    return reason


def _service_account() -> pwd.struct_passwd | None:
    """The user to run the server as: ``None`` for this one, the ``postgres`` user
    as root (Postgres refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as "
            "(it refuses to run as root; Debian's postgresql package creates that user)"
        ) from None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class PostgresServer:
    """A running private server; ``url`` names one of its databases."""

    host: str
    port: int
    user: str
    password: str
    data_dir: Path
    log_file: Path

    def url(self, database: str, *, password: str | None = None, port: int | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql://{self.user}:{secret}@{self.host}:{port or self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name unless given); its URL."""
        import psycopg
        from psycopg import sql

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


def _run(
    argv: Sequence[str], account: pwd.struct_passwd | None, cwd: Path, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    if account is not None:
        kwargs.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
    env = {**os.environ, "LC_ALL": "C"}
    if account is not None:
        env["HOME"] = account.pw_dir
    return subprocess.run(
        list(argv), cwd=cwd, env=env, text=True, stdin=subprocess.DEVNULL, check=False, **kwargs
    )


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def running_server(bindir: Path) -> Iterator[PostgresServer]:
    """Create a cluster in a temporary directory, start it on a free loopback port,
    yield it, stop it (``pg_ctl stop -m fast``) and delete the directory."""
    account = _service_account()
    # Not under pytest's tmp_path: /tmp/pytest-of-root is 0700, closed to `postgres`.
    base = Path(tempfile.mkdtemp(prefix="agentrt-pg-"))
    data, log = base / "data", base / "server.log"
    started = False
    try:
        if account is not None:
            os.chown(base, account.pw_uid, account.pw_gid)
        password = secrets.token_hex(12)
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        if account is not None:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        initdb = [
            str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256",
            "--locale=C", "--encoding=UTF8", "--no-sync",
        ]  # fmt: skip
        init = _run(initdb, account, base, capture_output=True, timeout=120)
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {init.returncode}):\n{init.stdout}\n{init.stderr}"
            )
        for _attempt in range(_PORT_ATTEMPTS):
            port = free_port()
            options = " ".join(
                [
                    f"-p {port}",
                    f"-k {shlex.quote(str(base))}",
                    "-c listen_addresses=127.0.0.1",
                    # A test cluster: durability is not wanted, speed is.
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                ]
            )
            pg_ctl = [
                str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log),
                "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start",
            ]  # fmt: skip
            start = _run(pg_ctl, account, base, capture_output=True, timeout=START_TIMEOUT_S + 30)
            if start.returncode == 0:
                started = True
                break
            if "already in use" not in _tail(log, 40):
                break
        if not started:
            raise RuntimeError(
                f"pg_ctl start failed (exit {start.returncode}): {start.stdout}{start.stderr}\n"
                f"server log {log}:\n{_tail(log)}"
            )
        yield PostgresServer("127.0.0.1", port, SUPERUSER, password, data, log)
    finally:
        # Also after a failed start: `pg_ctl -w` may give up on a server still starting.
        if (data / "postmaster.pid").exists():
            _run(
                [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                account,
                base,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", name="postgres_server")
def postgres_server_fixture() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the session; skips (saying why) without one."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(missing_reason())
    try:
        _service_account()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    began = time.monotonic()
    with running_server(bindir) as server:
        print(f"PostgreSQL from {bindir} started in {time.monotonic() - began:.1f}s")
        yield server


@pytest.fixture(name="postgres_url")
def postgres_url_fixture(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server, as a ``postgresql://`` URL."""
    return postgres_server.create_database()


def main() -> int:
    bindir = find_bindir()
    if bindir is None:
        print(missing_reason(), file=sys.stderr)
        return 1
    print(bindir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
