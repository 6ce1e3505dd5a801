"""The sandbox's SQLite store: one file (WAL), migrations, one transaction per write.

Durability: a write is committed before its call is answered. With WAL and
``synchronous=NORMAL`` (the default) a committed write survives the sandbox process
being killed, since it is in the WAL file; an OS crash or power loss may lose the last
commits (never the file's consistency), because the WAL is synced to disk only at
checkpoints. ``durable=True`` (``synchronous=FULL``) syncs the WAL at every commit, so
acknowledged writes survive those too; ``benchmarks/bench_durability.py`` measures the cost.

Entities are kept in one table, ``entity``, as their wire JSON (``data``) next to
the columns that lists filter and sort on most (kind, project, parent, owner,
creation time); indexes on an expression over ``data`` serve the display name as well. Relations (sharing, links, tags) have small tables of their own,
declared by the service modules as migrations.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Store", "default_db_path", "CORE_MIGRATIONS", "EntityRow", "Migration"]

# A migration: its name, and SQL statements or a function that changes the database in Python
# (for what SQL cannot compute, such as ids derived with uuid5), inside its transaction.
Migration = tuple[str, "str | Callable[[sqlite3.Connection], None]"]

CORE_MIGRATIONS: list[Migration] = [
    (
        "0001_entity",
        """
        CREATE TABLE entity (
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            project_id TEXT,
            parent_id TEXT,
            owner_id TEXT,
            created_time TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (kind, id)
        );
        CREATE INDEX entity_by_project ON entity (kind, project_id, created_time, id);
        CREATE INDEX entity_by_parent ON entity (kind, parent_id, created_time, id);
        CREATE INDEX entity_by_owner ON entity (kind, owner_id, created_time, id);
        CREATE INDEX entity_by_time ON entity (kind, created_time, id);
        CREATE TABLE entity_tag (
            entity_id TEXT NOT NULL,
            tag_id TEXT NOT NULL,
            PRIMARY KEY (entity_id, tag_id)
        );
        CREATE INDEX entity_tag_by_tag ON entity_tag (tag_id);
        CREATE TABLE user_account (
            idp_id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL UNIQUE
        );
        """,
    ),
    (
        "0002_entity_name_indexes",
        # After the creation time, lists sort and filter on the display name most (and lookups
        # by name filter on it): spelt as rpc.py's SQL is (COALESCE to the zero value, as proto3
        # reads an absent field), so that such a page walks an index instead of sorting every
        # entity of the kind.
        """
        CREATE INDEX entity_by_name ON entity
            (kind, COALESCE(json_extract(data, '$.displayName'), ''), id);
        CREATE INDEX entity_by_project_name ON entity
            (kind, project_id, COALESCE(json_extract(data, '$.displayName'), ''), id);
        """,
    ),
]

# The page cache while loading in bulk (KiB): room for the index builds' sorting.
_BULK_CACHE_KIB = 64 * 1024

# What Store.put_many takes per entity: its wire JSON, then the project, parent and owner ids.
EntityRow = tuple[dict[str, Any], str | None, str | None, str | None]


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/mlops_nb/sandbox.sqlite3`` (``~/.local/share/...`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "mlops_nb" / "sandbox.sqlite3"


class Store:
    """A SQLite database shared by the sandbox's request handlers (one connection, one lock)."""

    def __init__(self, path: str | os.PathLike[str], migrations: Sequence[Migration] = (), *,
                 durable: bool = False) -> None:
        self.path = str(path)
        self.durable = durable
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self.migrate([*CORE_MIGRATIONS, *migrations])

    # -- migrations -----------------------------------------------------------------------

    def migrate(self, migrations: Sequence[Migration]) -> list[str]:
        """Apply the migrations not applied yet, each in its own transaction; return their names."""
        applied = []
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_migration (name TEXT PRIMARY KEY, applied_time TEXT)")
        for name, sql in migrations:
            with self.transaction() as db:
                if db.execute("SELECT 1 FROM schema_migration WHERE name = ?", (name,)).fetchone():
                    continue
                if callable(sql):
                    sql(db)
                else:
                    for statement in _statements(sql):
                        db.execute(statement)
                db.execute("INSERT INTO schema_migration VALUES (?, datetime('now'))", (name,))
                applied.append(name)
        return applied

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: everything inside commits together, or nothing does."""
        with self._lock:
            if self._conn.in_transaction:  # nested: join the outer transaction
                yield self._conn
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    @contextmanager
    def bulk_load(self) -> Iterator[sqlite3.Connection]:
        """A write transaction for loading many entities at once (generated data).

        The entity table's secondary indexes are dropped at the start and built again at the
        end, from their own definitions: building an index from sorted rows is many times
        quicker than updating it row by row, in random key order.
        """
        with self.transaction() as db:
            cache_size = db.execute("PRAGMA cache_size").fetchone()[0]
            db.execute(f"PRAGMA cache_size = {-_BULK_CACHE_KIB}")
            try:
                indexes = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                     "AND tbl_name = 'entity' AND sql IS NOT NULL").fetchall()
                for index in indexes:
                    db.execute(f'DROP INDEX "{index["name"]}"')
                yield db
                for index in indexes:
                    db.execute(index["sql"])
            finally:
                db.execute(f"PRAGMA cache_size = {cache_size}")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """Consistent reads (the connection is shared, so reads take the lock too)."""
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- entities ---------------------------------------------------------------------------

    def put(self, kind: str, data: dict[str, Any], *, project_id: str | None = None,
            parent_id: str | None = None, owner_id: str | None = None) -> None:
        """Insert or replace an entity by (kind, data['id'])."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO entity (kind, id, project_id, parent_id, owner_id, created_time, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (kind, data["id"], project_id, parent_id, owner_id, data.get("createdTime", ""),
                 json.dumps(data, separators=(",", ":"))),
            )

    def put_many(self, kind: str, rows: Iterable[EntityRow]) -> int:
        """Insert or replace many entities of ``kind`` in one transaction and one prepared statement.

        Each row is (data, project_id, parent_id, owner_id), as :meth:`put` takes them; returns
        how many were written. For generated data: what the API stores, without a call per entity.
        """
        with self.transaction() as db:
            cursor = db.executemany(
                "INSERT OR REPLACE INTO entity (kind, id, project_id, parent_id, owner_id, created_time, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((kind, data["id"], project_id, parent_id, owner_id, data.get("createdTime", ""),
                  json.dumps(data, separators=(",", ":"))) for data, project_id, parent_id, owner_id in rows),
            )
            return cursor.rowcount

    def get(self, kind: str, entity_id: str) -> dict[str, Any] | None:
        with self.reading() as db:
            row = db.execute("SELECT data FROM entity WHERE kind = ? AND id = ?", (kind, entity_id)).fetchone()
        return json.loads(row["data"]) if row else None

    def row(self, kind: str, entity_id: str) -> sqlite3.Row | None:
        with self.reading() as db:
            return db.execute("SELECT * FROM entity WHERE kind = ? AND id = ?", (kind, entity_id)).fetchone()

    def delete(self, kind: str, entity_id: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM entity WHERE kind = ? AND id = ?", (kind, entity_id)).rowcount > 0


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]
