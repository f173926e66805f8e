"""Control state shared by every Gunicorn worker: one SQLite connection per worker process.

Two files, chosen for what must survive what:

- ``<data_dir>/control.sqlite3`` (a volume in compose): the runtime config document and the
  feature flags. Survives HUP, worker crashes and backend restarts.
- ``<runtime_dir>/faults.sqlite3`` (a tmpfs in compose, attached as ``rt``; the master also wipes
  it when it starts): the faults. Survives HUP and worker crashes, never a backend restart. Each
  fault carries an absolute expiry, so it never outlives its duration either way.

Every change bumps a version (config: its own document version, which is the ETag; flags,
faults and the items data: a counter each). ``versions()`` reads all of them in one statement
(about 4 µs), which is what lets every worker check for changes on every request.
Compare-and-set writes run in ``BEGIN IMMEDIATE`` transactions, so two writers holding the same
ETag cannot both win.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sut.control.errors import Conflict, Invalid, PreconditionFailed
from sut.control.model import CONFIG_SPEC, Fault, FaultLimits, Flag
from sut.control.schema import FieldError

__all__ = [
    "CONTROL_DB",
    "FAULTS_DB",
    "ConfigRecord",
    "ControlStore",
    "Versions",
    "wipe_runtime",
]

CONTROL_DB = "control.sqlite3"
FAULTS_DB = "faults.sqlite3"
HISTORY_S = 3600.0  # expired and deleted faults stay inspectable this long

_MAIN_SCHEMA = """
CREATE TABLE IF NOT EXISTS config (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    doc TEXT NOT NULL, version INTEGER NOT NULL, updated_at REAL NOT NULL, updated_by TEXT
);
CREATE TABLE IF NOT EXISTS flags (
    name TEXT PRIMARY KEY, value TEXT NOT NULL, variants TEXT, description TEXT NOT NULL,
    version INTEGER NOT NULL, updated_at REAL NOT NULL, updated_by TEXT
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('flags_version', 0), ('data_generation', 0);
"""
_RT_SCHEMA = """
CREATE TABLE IF NOT EXISTS rt.faults (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, params TEXT NOT NULL, duration_s REAL NOT NULL,
    created_at REAL NOT NULL, expires_at REAL NOT NULL, created_by TEXT, deleted_at REAL,
    matched INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS rt.meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO rt.meta VALUES ('faults_version', 0);
"""
_VERSIONS = """
SELECT (SELECT version FROM main.config WHERE id = 1),
       (SELECT value FROM main.meta WHERE key = 'flags_version'),
       (SELECT value FROM rt.meta WHERE key = 'faults_version'),
       (SELECT value FROM main.meta WHERE key = 'data_generation')
"""
_FAULT_COLUMNS = (
    "id, kind, params, duration_s, created_at, expires_at, created_by, deleted_at, matched"
)


def wipe_runtime(runtime_dir: Path) -> None:
    """Forget every fault (the master calls this when it starts: faults never survive it)."""
    runtime_dir.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm", "-journal"):
        (runtime_dir / (FAULTS_DB + suffix)).unlink(missing_ok=True)


@dataclass(frozen=True)
class Versions:
    config: int
    flags: int
    faults: int
    data: int


@dataclass(frozen=True)
class ConfigRecord:
    doc: Mapping[str, Any]
    version: int
    updated_at: float
    updated_by: str | None

    @property
    def etag(self) -> str:
        return f'"config-{self.version}"'

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
            **self.doc,
        }


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if key in out and isinstance(out[key], dict) and isinstance(value, dict):
            out[key] = _deep_merge(out[key], value)
        elif key in out:
            out[key] = value
    return out


class ControlStore:
    """Reads and compare-and-set writes of the control state; one instance per process."""

    def __init__(
        self,
        data_dir: Path,
        runtime_dir: Path,
        defaults: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        runtime_dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.defaults = dict(defaults)
        self.desired_workers_file = data_dir / "desired-workers.json"
        self._db = sqlite3.connect(data_dir / CONTROL_DB, timeout=5.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("ATTACH DATABASE ? AS rt", (str(runtime_dir / FAULTS_DB),))
        self._db.execute("PRAGMA rt.journal_mode=WAL")
        self._db.execute("PRAGMA rt.synchronous=NORMAL")
        self._db.executescript(_MAIN_SCHEMA + _RT_SCHEMA)
        self._db.execute(
            "INSERT OR IGNORE INTO config VALUES (1, ?, 1, ?, 'defaults')",
            (json.dumps(self.defaults), self.clock()),
        )

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def versions(self) -> Versions:
        row = self._db.execute(_VERSIONS).fetchone()
        return Versions(*(int(v or 0) for v in row))

    # -- config ------------------------------------------------------------------------------

    def config(self) -> ConfigRecord:
        return self._read_config(self._db)

    def _read_config(self, db: sqlite3.Connection) -> ConfigRecord:
        doc, version, updated_at, updated_by = db.execute(
            "SELECT doc, version, updated_at, updated_by FROM config WHERE id = 1"
        ).fetchone()
        merged = _deep_merge(self.defaults, json.loads(doc))
        accepted, errors = CONFIG_SPEC.validate(merged)
        doc = accepted if not errors else self.defaults
        return ConfigRecord(doc, version, updated_at, updated_by)

    def write_config(
        self,
        matches: Callable[[ConfigRecord], bool],
        update: Callable[[Mapping[str, Any]], tuple[dict[str, Any], list[FieldError]]],
        caller: str | None,
    ) -> tuple[ConfigRecord, ConfigRecord]:
        """Compare-and-set: ``PreconditionFailed`` unless ``matches(current)``; ``Invalid`` if
        ``update(current doc)`` reports errors. Returns (before, after)."""
        with self._write() as db:
            before = self._read_config(db)
            if not matches(before):
                raise PreconditionFailed(
                    f"the config is at version {before.version} (ETag {before.etag}); "
                    "GET it again and retry with that ETag in If-Match. Nothing was changed",
                    headers={"ETag": before.etag},
                )
            doc, errors = update(before.doc)
            if errors:
                raise Invalid(errors, what="configuration")
            version = before.version + 1
            db.execute(
                "UPDATE config SET doc = ?, version = ?, updated_at = ?, updated_by = ? "
                "WHERE id = 1",
                (json.dumps(doc), version, self.clock(), caller),
            )
            after = self._read_config(db)
        self.write_desired_workers(after)
        return before, after

    def write_desired_workers(self, record: ConfigRecord) -> None:
        """Publish the desired worker count for the Control Agent (atomic replace)."""
        body = {
            "desired_workers": record.doc["desired_workers"],
            "config_version": record.version,
            "written_at": self.clock(),
            "writer_pid": os.getpid(),
        }
        tmp = self.desired_workers_file.with_name(
            f".{self.desired_workers_file.name}.{os.getpid()}.tmp"
        )
        tmp.write_text(json.dumps(body) + "\n")
        os.replace(tmp, self.desired_workers_file)

    def published_desired_version(self) -> int | None:
        try:
            data = json.loads(self.desired_workers_file.read_text())
            return int(data["config_version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    # -- flags -------------------------------------------------------------------------------

    def flags(self) -> dict[str, Flag]:
        rows = self._db.execute(
            "SELECT name, value, variants, description, version, updated_at, updated_by "
            "FROM flags ORDER BY name"
        ).fetchall()
        return {row[0]: _flag(row) for row in rows}

    def put_flag(
        self,
        name: str,
        value: bool | str,
        variants: tuple[str, ...] | None,
        description: str,
        caller: str | None,
        matches: Callable[[Flag | None], bool],
    ) -> tuple[Flag | None, Flag]:
        with self._write() as db:
            before = self._flag(db, name)
            if not matches(before):
                raise PreconditionFailed(_stale_flag(name, before))
            version = (before.version if before else 0) + 1
            db.execute(
                "INSERT OR REPLACE INTO flags VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    json.dumps(value),
                    json.dumps(list(variants)) if variants is not None else None,
                    description,
                    version,
                    self.clock(),
                    caller,
                ),
            )
            self._bump(db, "main", "flags_version")
            after = self._flag(db, name)
        assert after is not None
        return before, after

    def delete_flag(self, name: str, matches: Callable[[Flag | None], bool]) -> Flag | None:
        with self._write() as db:
            before = self._flag(db, name)
            if before is None:
                return None
            if not matches(before):
                raise PreconditionFailed(_stale_flag(name, before))
            db.execute("DELETE FROM flags WHERE name = ?", (name,))
            self._bump(db, "main", "flags_version")
        return before

    def delete_all_flags(self) -> list[str]:
        with self._write() as db:
            names = [row[0] for row in db.execute("SELECT name FROM flags ORDER BY name")]
            db.execute("DELETE FROM flags")
            self._bump(db, "main", "flags_version")
        return names

    def _flag(self, db: sqlite3.Connection, name: str) -> Flag | None:
        row = db.execute(
            "SELECT name, value, variants, description, version, updated_at, updated_by "
            "FROM flags WHERE name = ?",
            (name,),
        ).fetchone()
        return _flag(row) if row else None

    # -- faults ------------------------------------------------------------------------------

    def add_fault(
        self,
        kind: str,
        params: Mapping[str, Any],
        duration_s: float,
        caller: str | None,
        limits: FaultLimits,
    ) -> Fault:
        """Store a fault; ``Invalid`` if longer than the configured maximum, ``Conflict`` if it
        would exceed a total (active faults, CPU cores, memory)."""
        with self._write() as db:
            now = self.clock()
            longest = int(self._read_config(db).doc["fault_max_duration_s"])
            if duration_s > longest:
                raise Invalid(
                    [
                        FieldError(
                            ("duration_s",),
                            f"must be <= fault_max_duration_s ({longest} s), got {duration_s!r}",
                        )
                    ],
                    what="fault",
                )
            db.execute(
                "DELETE FROM rt.faults WHERE coalesce(deleted_at, expires_at) < ?",
                (now - HISTORY_S,),
            )
            active = self._faults(db, "deleted_at IS NULL AND expires_at > ?", (now,))
            _check_totals(kind, params, active, limits)
            fault = Fault(
                id="f-" + secrets.token_hex(6),
                kind=kind,
                params=dict(params),
                duration_s=float(duration_s),
                created_at=now,
                expires_at=now + float(duration_s),
                created_by=caller,
            )
            db.execute(
                f"INSERT INTO rt.faults ({_FAULT_COLUMNS}) "  # noqa: S608 (fixed column list)
                "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, 0)",
                (
                    fault.id,
                    kind,
                    json.dumps(fault.params),
                    fault.duration_s,
                    fault.created_at,
                    fault.expires_at,
                    caller,
                ),
            )
            self._bump(db, "rt", "faults_version")
        return fault

    def active_faults(self) -> list[Fault]:
        return self._faults(self._db, "deleted_at IS NULL AND expires_at > ?", (self.clock(),))

    def fault(self, fault_id: str) -> Fault | None:
        found = self._faults(self._db, "id = ?", (fault_id,))
        return found[0] if found else None

    def delete_fault(self, fault_id: str) -> Fault | None:
        """Mark an active fault deleted; None if there is no active fault with that id."""
        with self._write() as db:
            now = self.clock()
            found = self._faults(
                db, "id = ? AND deleted_at IS NULL AND expires_at > ?", (fault_id, now)
            )
            if not found:
                return None
            db.execute("UPDATE rt.faults SET deleted_at = ? WHERE id = ?", (now, fault_id))
            self._bump(db, "rt", "faults_version")
        return found[0]

    def clear_faults(self) -> list[Fault]:
        with self._write() as db:
            now = self.clock()
            active = self._faults(db, "deleted_at IS NULL AND expires_at > ?", (now,))
            db.execute(
                "UPDATE rt.faults SET deleted_at = ? WHERE deleted_at IS NULL AND expires_at > ?",
                (now, now),
            )
            self._bump(db, "rt", "faults_version")
        return active

    def take_first_n(self, fault_id: str, first_n: int) -> bool:
        """Count one matching request against ``first_n``; True while within the first N."""
        row = self._db.execute(
            "UPDATE rt.faults SET matched = matched + 1 WHERE id = ? AND matched < ? "
            "RETURNING matched",
            (fault_id, first_n),
        ).fetchall()  # fetch all: the statement (and its write lock) ends only then
        return bool(row)

    def _faults(self, db: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> list[Fault]:
        # ``where`` is always one of this module's literals; values go through ``args``.
        query = f"SELECT {_FAULT_COLUMNS} FROM rt.faults WHERE {where} ORDER BY created_at"  # noqa: S608
        rows = db.execute(query, args).fetchall()
        return [
            Fault(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6], r[7], r[8]) for r in rows
        ]

    # -- items data --------------------------------------------------------------------------

    def bump_data_generation(self) -> int:
        with self._write() as db:
            self._bump(db, "main", "data_generation")
            (value,) = db.execute("SELECT value FROM meta WHERE key = 'data_generation'").fetchone()
        return int(value)

    @staticmethod
    def _bump(db: sqlite3.Connection, schema: str, key: str) -> None:
        assert schema in ("main", "rt")
        db.execute(f"UPDATE {schema}.meta SET value = value + 1 WHERE key = ?", (key,))  # noqa: S608


def _flag(row: tuple[Any, ...]) -> Flag:
    name, value, variants, description, version, updated_at, updated_by = row
    parsed_variants = tuple(json.loads(variants)) if variants else None
    return Flag(
        name, json.loads(value), parsed_variants, description, version, updated_at, updated_by
    )


def _stale_flag(name: str, current: Flag | None) -> str:
    if current is None:
        return f"flag {name!r} does not exist (If-Match expected it to); nothing was changed"
    return (
        f'flag {name!r} is at version {current.version} (ETag "flag-{current.version}"); '
        "GET it again and retry. Nothing was changed"
    )


def _check_totals(
    kind: str, params: Mapping[str, Any], active: list[Fault], limits: FaultLimits
) -> None:
    if len(active) >= limits.max_active:
        raise Conflict(
            f"{len(active)} faults are active, the most allowed at once is {limits.max_active}; "
            "delete some (DELETE /config/faults/{id}) or clear all (DELETE /config/faults)"
        )
    totals = {
        "cpu": ("cores", limits.cpu_max_cores, "cores"),
        "memory": ("mb", limits.memory_max_mb, "MB"),
    }
    if kind not in totals:
        return
    key, most, unit = totals[kind]
    used = sum(int(f.params[key]) for f in active if f.kind == kind)
    asked = int(params[key])
    if used + asked > most:
        raise Conflict(
            f"active {kind} faults already use {used} {unit}; {asked} more would exceed the "
            f"total of {most} {unit} the backend allows. Wait for them to expire or delete them"
        )
