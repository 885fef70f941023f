"""Where the test support looks for PostgreSQL's server binaries, on fake directories
laid out as Debian lays them out (``/usr/lib/postgresql/<version>/bin``, off PATH),
and what it says when there are none."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from tests.support import postgres
from tests.support.postgres import find_bindir, missing_reason


def program(path: Path, body: str = "exit 0") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def server(bindir: Path, names: tuple[str, ...] = ("initdb", "pg_ctl", "postgres")) -> Path:
    for name in names:
        program(bindir / name)
    return bindir


def pg_config(directory: Path, bindir: Path) -> Path:
    return program(directory / "pg_config", f'echo "{bindir}"')


def test_debian_layout_newest_complete_version_first(tmp_path: Path) -> None:
    root = tmp_path / "usr/lib/postgresql"
    server(root / "9.6/bin")
    newest = server(root / "10/bin")  # 10 > 9.6: versions compare as numbers
    assert find_bindir(pg_config=None, debian_root=root, path="") == newest
    server(root / "16/bin", ("pg_ctl",))  # a client-only or half-removed version
    assert find_bindir(pg_config=None, debian_root=root, path="") == newest
    program(root / "16/bin/initdb").chmod(0o644)  # not executable: does not count
    assert find_bindir(pg_config=None, debian_root=root, path="") == newest
    (root / "16/bin/initdb").chmod(0o755)
    assert find_bindir(pg_config=None, debian_root=root, path="") == root / "16/bin"


def test_pg_config_bindir_first_when_it_holds_the_server(tmp_path: Path) -> None:
    root = tmp_path / "usr/lib/postgresql"
    debian = server(root / "15/bin")
    elsewhere = server(tmp_path / "opt/pg/bin")
    tools = tmp_path / "tools"
    pg_config(tools, elsewhere)
    assert find_bindir(debian_root=root, path=str(tools)) == elsewhere
    # Debian's pg_config comes with libpq-dev and names a bindir without a server.
    pg_config(tools, tmp_path / "usr/lib/postgresql/16/bin")
    assert find_bindir(debian_root=root, path=str(tools)) == debian
    program(tools / "pg_config", "exit 1")  # a broken pg_config is passed over
    assert find_bindir(debian_root=root, path=str(tools)) == debian


def test_path_last_with_links_resolved(tmp_path: Path) -> None:
    real = server(tmp_path / "usr/lib/postgresql/15/bin")
    linked = tmp_path / "usr/local/bin"
    linked.mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        (linked / name).symlink_to(real / name)
    empty_root = tmp_path / "nowhere"
    assert find_bindir(pg_config=None, debian_root=empty_root, path=str(linked)) == real
    plain = server(tmp_path / "plain/bin")
    assert find_bindir(pg_config=None, debian_root=empty_root, path=str(plain)) == plain


def test_nothing_found_says_where_it_looked_and_why_the_install_failed(tmp_path: Path) -> None:
    assert find_bindir(debian_root=tmp_path / "nowhere", path=str(tmp_path)) is None
    log = tmp_path / "postgres-install.log"
    reason = missing_reason(log)
    assert "initdb, pg_ctl" in reason and "/usr/lib/postgresql/*/bin" in reason
    assert "make postgres" in reason and "apt-get install postgresql" in reason
    log.write_text("Reading package lists...\nE: Could not open lock file - are you root?\n")
    assert "E: Could not open lock file - are you root?" in missing_reason(log)


def test_root_runs_the_server_as_postgres_or_says_why_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert postgres._service_account() is None, "not root: this user runs it"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    account = pwd.struct_passwd(("postgres", "x", 101, 104, "", "/var/lib/postgresql", "/bin/sh"))
    monkeypatch.setattr(pwd, "getpwnam", lambda name: account)
    assert postgres._service_account() == account

    def no_user(name: str) -> pwd.struct_passwd:
        raise KeyError(name)

    monkeypatch.setattr(pwd, "getpwnam", no_user)
    with pytest.raises(postgres.PostgresUnavailable, match="refuses to run as root"):
        postgres._service_account()


def test_the_makefile_lookup_exits_1_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(postgres, "find_bindir", lambda: None)
    assert postgres.main() == 1
    assert "not found" in capsys.readouterr().err
    monkeypatch.setattr(postgres, "find_bindir", lambda: tmp_path)
    assert postgres.main() == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
