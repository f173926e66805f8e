"""The items data behind ``/api/items``: one SQLite file shared by every Gunicorn worker.

Workers are separate processes, so in-process dicts would make "create, then get" depend on which
worker answers; SQLite in WAL mode gives every worker the same view at a realistic cost.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Item", "ItemStore"]

# The orders GET /api/items offers (feature flag items_order); only these reach the SQL text.
_ORDERS = frozenset({"id", "created_at DESC, id DESC", "price_cents, id"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    price_cents INTEGER NOT NULL,
    created_at REAL NOT NULL
)
"""


@dataclass(frozen=True)
class Item:
    id: int
    name: str
    price_cents: int
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ItemStore:
    """CRUD on items; one instance (one connection) per worker process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def list(self, limit: int = 100, offset: int = 0, order_by: str = "id") -> list[Item]:
        if order_by not in _ORDERS:
            raise ValueError(f"order_by must be one of {sorted(_ORDERS)}, not {order_by!r}")
        columns = "id, name, price_cents, created_at"
        query = f"SELECT {columns} FROM items ORDER BY {order_by} LIMIT ? OFFSET ?"  # noqa: S608
        rows = self._db.execute(query, (limit, offset)).fetchall()
        return [Item(*row) for row in rows]

    def count(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM items").fetchone()
        return int(n)

    def get(self, item_id: int) -> Item | None:
        row = self._db.execute(
            "SELECT id, name, price_cents, created_at FROM items WHERE id = ?", (item_id,)
        ).fetchone()
        return Item(*row) if row else None

    def create(self, name: str, price_cents: int) -> Item:
        now = time.time()
        cur = self._db.execute(
            "INSERT INTO items (name, price_cents, created_at) VALUES (?, ?, ?)",
            (name, price_cents, now),
        )
        assert cur.lastrowid is not None
        return Item(cur.lastrowid, name, price_cents, now)

    def reset(self) -> None:
        self._db.execute("DELETE FROM items")
        self._db.execute("DELETE FROM sqlite_sequence WHERE name = 'items'")

    def seed(self, n: int) -> int:
        now = time.time()
        self._db.executemany(
            "INSERT INTO items (name, price_cents, created_at) VALUES (?, ?, ?)",
            ((f"item-{i}", 100 + i, now) for i in range(n)),
        )
        return n

    def replace_with_generated(self, n: int) -> int:
        """Exactly ``n`` generated items with ids 1..n, in one transaction (deterministic data)."""
        now = time.time()
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute("DELETE FROM items")
            self._db.execute("DELETE FROM sqlite_sequence WHERE name = 'items'")
            self._db.executemany(
                "INSERT INTO items (name, price_cents, created_at) VALUES (?, ?, ?)",
                ((f"item-{i}", 100 + (i * 37) % 10_000, now + i * 1e-6) for i in range(1, n + 1)),
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return n

    def close(self) -> None:
        self._db.close()
