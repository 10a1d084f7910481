"""Database backups: pg_dump custom-format archives in BACKUP_DIR, rotated, and restored.

Credentials reach pg_dump / pg_restore through the environment (PGPASSWORD and friends, built
from Django's own connection settings), never on the command line where `ps` would show them.
An archive is written to `<name>.partial` and renamed when complete, so an interrupted dump is
never mistaken for a backup nor counted by the rotation.

Settings (read with defaults until they are declared in settings): BACKUP_DIR, BACKUP_RETENTION,
BACKUP_PREFIX, BACKUP_PG_BIN_DIR, BACKUP_TIMEOUT, BACKUP_S3_BUCKET (+ BACKUP_S3_ENDPOINT_URL,
BACKUP_S3_PREFIX).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from .locks import LockNotAcquired, advisory_lock

logger = logging.getLogger(__name__)

BACKUP_LOCK = "portfolio:backup"
SUFFIX = ".dump"
# Where Django's OPTIONS go in libpq's environment.
_LIBPQ_OPTION_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "application_name": "PGAPPNAME",
    "service": "PGSERVICE",
    "passfile": "PGPASSFILE",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}
# Inherited variables that could point the tools at another database than Django's.
_INHERITED_PG_TARGET = (
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSERVICE",
    "PGOPTIONS",
)


class BackupError(Exception):
    """A backup or restore could not be done; the message says why and what to do."""


class UploadNotAvailable(BackupError):
    """BACKUP_S3_* is configured but this build has no uploader (boto3 is not a dependency)."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    size_bytes: int
    seconds: float
    removed: tuple[Path, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "seconds": round(self.seconds, 3),
            "removed": [str(p) for p in self.removed],
        }


# --- configuration ---------------------------------------------------------------------------


def backup_dir() -> Path:
    return Path(getattr(settings, "BACKUP_DIR", "") or Path(settings.BASE_DIR) / "var" / "backups")


def backup_retention() -> int:
    return int(getattr(settings, "BACKUP_RETENTION", 7))


def backup_prefix() -> str:
    return str(getattr(settings, "BACKUP_PREFIX", "portfolio"))


def s3_requested() -> bool:
    return any(
        getattr(settings, name, "")
        for name in ("BACKUP_S3_BUCKET", "BACKUP_S3_ENDPOINT_URL", "BACKUP_S3_PREFIX")
    )


def _tool(name: str) -> str:
    bin_dir = str(getattr(settings, "BACKUP_PG_BIN_DIR", "") or "")
    found = shutil.which(name, path=bin_dir or None)
    if not found:
        where = f"in BACKUP_PG_BIN_DIR={bin_dir}" if bin_dir else "on PATH"
        raise BackupError(
            f"{name} not found {where}: install the PostgreSQL client tools matching the server "
            "(Debian: postgresql-client), or point BACKUP_PG_BIN_DIR at them."
        )
    return found


# --- names and rotation ----------------------------------------------------------------------


def backup_filename(*, at: datetime, prefix: str | None = None) -> str:
    """`portfolio-20261129T021500Z.dump`: UTC, sortable by name."""
    return f"{prefix or backup_prefix()}-{at.astimezone(UTC):%Y%m%dT%H%M%SZ}{SUFFIX}"


def _name_re(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(prefix)}-\d{{8}}T\d{{6}}Z{re.escape(SUFFIX)}$")


def backups_list(*, directory: Path | None = None, prefix: str | None = None) -> list[Path]:
    """Our complete archives in `directory`, newest first. Other files are not ours: ignored."""
    directory = directory or backup_dir()
    if not directory.is_dir():
        return []
    pattern = _name_re(prefix or backup_prefix())
    return sorted(
        (p for p in directory.iterdir() if p.is_file() and pattern.match(p.name)),
        key=lambda p: p.name,
        reverse=True,
    )


def backups_rotate(
    *, directory: Path | None = None, keep: int | None = None, prefix: str | None = None
) -> list[Path]:
    """Delete all but the `keep` newest archives; returns what was deleted."""
    keep = backup_retention() if keep is None else keep
    if keep < 1:
        raise BackupError(f"BACKUP_RETENTION must be at least 1 (got {keep}).")
    from .erasure import ledger_sidecar

    removed = backups_list(directory=directory, prefix=prefix)[keep:]
    for path in removed:
        path.unlink(missing_ok=True)
        ledger_sidecar(path).unlink(missing_ok=True)
        logger.info("ops.backup.rotated", extra={"file": path.name})
    return removed


# --- PostgreSQL plumbing -----------------------------------------------------------------------


def _postgres_settings(using: str) -> dict[str, Any]:
    connection = connections[using]
    if connection.vendor != "postgresql":
        raise BackupError(
            f"Backups need PostgreSQL; the '{using}' database is {connection.vendor}. "
            "Copy the SQLite file instead (with the service stopped)."
        )
    return dict(connection.settings_dict)


def pg_environment(settings_dict: dict[str, Any]) -> dict[str, str]:
    """The process environment for pg_dump / pg_restore: Django's connection, through libpq's
    variables. The password is only ever here, never in argv."""
    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_PG_TARGET}
    values = {
        "PGDATABASE": settings_dict.get("NAME"),
        "PGUSER": settings_dict.get("USER"),
        "PGPASSWORD": settings_dict.get("PASSWORD"),
        "PGHOST": settings_dict.get("HOST"),
        "PGPORT": settings_dict.get("PORT"),
    }
    for option, variable in _LIBPQ_OPTION_ENV.items():
        values[variable] = (settings_dict.get("OPTIONS") or {}).get(option)
    env.update({name: str(value) for name, value in values.items() if value not in (None, "")})
    return env


def _major(version_text: str) -> int:
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", version_text)
    if not match:
        raise BackupError(f"cannot read the PostgreSQL client version from {version_text!r}")
    return int(match.group(1))


def client_server_versions(*, tool: str, using: str = DEFAULT_DB_ALIAS) -> tuple[int, int]:
    """(client major, server major). pg_dump refuses a newer server; say so before it does."""
    output = subprocess.run(  # noqa: S603 - fixed argv, resolved binary
        [tool, "--version"], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    with connections[using].cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        row = cursor.fetchone()
    server = int(row[0]) // 10000 if row else 0
    return _major(output), server


def _run(argv: list[str], *, env: dict[str, str], timeout: float, what: str) -> None:
    try:
        completed = subprocess.run(  # noqa: S603 - argv built here, no shell
            argv, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BackupError(f"{what} did not finish within {timeout:g} s (BACKUP_TIMEOUT).") from exc
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip()[-2000:]
        raise BackupError(f"{what} failed (exit {completed.returncode}): {tail}")


# --- backup and restore ------------------------------------------------------------------------


def backup_create(
    *,
    directory: Path | None = None,
    keep: int | None = None,
    using: str = DEFAULT_DB_ALIAS,
    now: datetime | None = None,
) -> BackupResult:
    """Dump the database to `<BACKUP_DIR>/<prefix>-<UTC timestamp>.dump` (pg_dump custom
    format), then keep only the `keep` newest archives. One backup at a time (advisory lock).

    If BACKUP_S3_* is configured, raises UploadNotAvailable after writing and rotating the local
    archive: uploading is left to configuration in this build (see docs/DEPLOYMENT.md)."""
    settings_dict = _postgres_settings(using)
    pg_dump = _tool("pg_dump")
    client, server = client_server_versions(tool=pg_dump, using=using)
    if client < server:
        raise BackupError(
            f"pg_dump {client} cannot dump a PostgreSQL {server} server: install "
            f"postgresql-client-{server} (or newer) or set BACKUP_PG_BIN_DIR."
        )
    directory = directory or backup_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / backup_filename(at=now or datetime.now(UTC))
    if path.exists():
        raise BackupError(f"{path} already exists; one backup per second at most.")
    partial = path.with_name(path.name + ".partial")
    started = time.monotonic()
    try:
        with advisory_lock(BACKUP_LOCK, timeout=0, using=using):
            _run(
                [pg_dump, "--format=custom", "--no-password", f"--file={partial}"],
                env=pg_environment(settings_dict),
                timeout=float(getattr(settings, "BACKUP_TIMEOUT", 2400)),
                what="pg_dump",
            )
            partial.chmod(0o600)
            partial.replace(path)
    except LockNotAcquired as exc:
        raise BackupError("another backup is running; try again when it has finished") from exc
    finally:
        partial.unlink(missing_ok=True)
    seconds = time.monotonic() - started
    _ledger_copy_beside(path, using=using)
    removed = backups_rotate(directory=directory, keep=keep)
    result = BackupResult(
        path=path, size_bytes=path.stat().st_size, seconds=seconds, removed=tuple(removed)
    )
    logger.info(
        "ops.backup.created",
        extra={"file": path.name, "size_bytes": result.size_bytes, "removed": len(removed)},
    )
    if s3_requested():
        raise UploadNotAvailable(
            f"Backup written to {path}, but BACKUP_S3_* is set and uploading to S3-compatible "
            "storage is left to configuration in this build (boto3 is not a dependency): sync "
            "BACKUP_DIR with your storage's own tool (e.g. `aws s3 sync`, `rclone sync`) from a "
            "sidecar or cron job, or unset BACKUP_S3_BUCKET / BACKUP_S3_ENDPOINT_URL / "
            "BACKUP_S3_PREFIX."
        )
    return result


def _ledger_copy_beside(archive: Path, *, using: str) -> None:
    """The erasure ledger as it stands, beside the archive and in BACKUP_DIR/erasures.jsonl:
    a restore of this archive after the database is lost still knows every erasure."""
    from .erasure import ledger_entries, ledger_file_write, ledger_path, ledger_sidecar

    try:
        entries = ledger_entries(using=using)
        ledger_file_write(ledger_sidecar(archive), entries)
        ledger_file_write(ledger_path(), entries)
    except OSError as exc:
        # The table in the archive holds the ledger too; only a restore after losing both the
        # database and this copy would miss erasures. Loud, but the backup itself is good.
        logger.error("ops.erasure.ledger_write_failed", extra={"error": type(exc).__name__})


@dataclass(frozen=True)
class RestoreResult:
    seconds: float
    ledger_entries: int
    # One line per receiver of `database_restored` (erasures re-applied, cache invalidated).
    notes: tuple[str, ...] = ()


def backup_restore(
    *, path: Path, using: str = DEFAULT_DB_ALIAS, lock_timeout_seconds: int = 60
) -> RestoreResult:
    """Replace the database's tables with the archive's, in one transaction: on any error
    nothing changes. Stop web, worker and beat first; a session holding a table lock makes
    the restore fail after `lock_timeout_seconds` rather than hang.

    Erasures are never undone: the erasure ledger of the live database (read before it is
    replaced), the copy beside the archive and BACKUP_DIR/erasures.jsonl go back into the
    restored table, and `database_restored` receivers erase every visitor it names again and
    bring the cache in line with the restored database."""
    from .erasure import (
        ledger_entries,
        ledger_file_write,
        ledger_path,
        ledger_store,
        ledger_table_read_or_empty,
    )
    from .signals import database_restored

    settings_dict = _postgres_settings(using)
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    pg_restore = _tool("pg_restore")
    live_ledger = ledger_table_read_or_empty(using=using)
    env = pg_environment(settings_dict)
    env["PGOPTIONS"] = f"-c lock_timeout={int(lock_timeout_seconds * 1000)}"
    started = time.monotonic()
    _run(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-acl",
            "--single-transaction",
            "--exit-on-error",
            "--no-password",
            f"--dbname={settings_dict['NAME']}",
            str(path),
        ],
        env=env,
        timeout=float(getattr(settings, "BACKUP_TIMEOUT", 2400)),
        what="pg_restore",
    )
    # Visitors erased since this archive was made must not come back with it.
    ledger = ledger_entries(archive=path, using=using)  # the restored table, the files
    ledger.update({h: at for h, at in live_ledger.items() if h not in ledger})
    notes = []
    try:
        with transaction.atomic(using=using):
            ledger_store(ledger, using=using)
    except DatabaseError:
        notes.append(
            "erasure ledger: this archive has no ledger table; run `manage.py migrate`, then "
            "`manage.py erase_visitor --reapply-ledger`"
        )
    try:
        ledger_file_write(ledger_path(), ledger)
    except OSError as exc:
        logger.warning("ops.erasure.ledger_write_failed", extra={"error": type(exc).__name__})
    for _receiver, note in database_restored.send(sender=BackupResult, ledger=set(ledger)):
        if note:
            notes.append(str(note))
    seconds = time.monotonic() - started
    logger.info(
        "ops.backup.restored",
        extra={"file": path.name, "seconds": round(seconds, 3), "ledger_entries": len(ledger)},
    )
    return RestoreResult(seconds=seconds, ledger_entries=len(ledger), notes=tuple(notes))
