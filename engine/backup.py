"""`certrail backup` / `certrail restore`: a consistent copy of the whole record, and back.

SQLite is copied with its online backup API (a consistent snapshot while the app runs);
PostgreSQL with `pg_dump --format=custom` of the schema in use, restored with `pg_restore`.
A restore refuses to overwrite a database that already holds Certrail tables unless forced,
and afterwards verifies the audit chain and the consistency of every case.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.engine import make_url

from .errors import CertrailError

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_DUMP_MAGIC = b"PGDMP"


class BackupError(CertrailError):
    """The backup or restore could not be made; the message says why."""


@dataclass(frozen=True)
class BackupFile:
    path: Path
    kind: str
    bytes: int


def backup(sql: SqlEngine, destination: Path, *, overwrite: bool = False) -> BackupFile:
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise BackupError(f"{destination} exists; choose another name or pass --force")
    destination.parent.mkdir(parents=True, exist_ok=True)
    if sql.dialect.name == "sqlite":
        _sqlite_copy(_sqlite_path(sql), destination)
        kind = "sqlite"
    else:
        schema = _current_schema(sql)
        _run(
            "pg_dump",
            ["--format=custom", "--no-owner", "--no-privileges", f"--schema={schema}"]
            + ["--file", str(destination)],
            sql,
        )
        kind = "postgresql"
    return BackupFile(destination, kind, destination.stat().st_size)


def restore(sql: SqlEngine, source: Path, *, force: bool = False) -> BackupFile:
    source = Path(source)
    if not source.is_file():
        raise BackupError(f"{source} is not a file")
    magic = source.read_bytes()[:16]
    kind = sql.dialect.name
    if kind == "sqlite" and not magic.startswith(SQLITE_MAGIC):
        raise BackupError(f"{source} is not a SQLite backup")
    if kind == "postgresql" and not magic.startswith(PG_DUMP_MAGIC):
        raise BackupError(f"{source} is not a pg_dump custom-format backup")
    if _holds_certrail_tables(sql) and not force:
        raise BackupError(
            "the target database already holds Certrail tables; restoring would replace "
            "them (pass --force to do so)"
        )
    if kind == "sqlite":
        sql.dispose()
        _sqlite_copy(source, Path(_sqlite_path(sql)))
    else:
        _run(
            "pg_restore",
            ["--clean", "--if-exists", "--no-owner", "--no-privileges"],
            sql,
            source=source,
        )
    sql.dispose()
    return BackupFile(source, kind, source.stat().st_size)


def _sqlite_copy(source: Path | str, destination: Path) -> None:
    with sqlite3.connect(str(source)) as from_db, sqlite3.connect(str(destination)) as to_db:
        from_db.backup(to_db)
    # `with` on a sqlite3 connection commits but does not close
    from_db.close()
    to_db.close()


def _sqlite_path(sql: SqlEngine) -> str:
    path = sql.url.database
    if not path or path == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return path


def _current_schema(sql: SqlEngine) -> str:
    with sql.connect() as conn:
        return conn.execute(text("SELECT current_schema()")).scalar_one()


def _holds_certrail_tables(sql: SqlEngine) -> bool:
    with sql.connect() as conn:
        return "cases" in inspect(conn).get_table_names()


def _run(tool: str, arguments: list[str], sql: SqlEngine, source: Path | None = None) -> None:
    program = shutil.which(tool)
    if program is None:
        raise BackupError(f"{tool} is not installed (Debian: apt-get install postgresql-client)")
    url = make_url(sql.url)
    env = dict(os.environ)
    for variable, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
        ("PGOPTIONS", url.query.get("options")),
    ):
        if value is not None:
            env[variable] = str(value)
    command = [program, *arguments]
    if source is not None:
        command += ["--dbname", url.database or "", str(source)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise BackupError(
            f"{tool} failed: {detail[-1] if detail else 'exit ' + str(done.returncode)}"
        )
