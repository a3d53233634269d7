"""Results on disk: one SQLite table of measured Results, so sweeps resume instead of recomputing.

Each row is keyed by (model_id, recipe_json, mode, runtime, latency_batch) and holds the whole
``Result`` as JSON, a few indexed columns for querying, and ``created_at``. The mode is the evaluation set
(``quick``/``full``), the runtime the one latency and accuracy were measured on (``torch``: eager PyTorch).
Schema version 1 wrote the runtime into the mode (``quick@openvino``); such a file is migrated to version 2
when it is opened, in one transaction, every row kept.

Re-measuring. Accuracy, parameters and sizes are deterministic; latency is not. ``put`` over an
existing row therefore keeps the *better-quality* latency measurement of the two (``timing.better``:
quiet beats noisy, then the smaller spread of the paired speed-up), not simply the newer one: the
other fields come from the new result, the latency fields (``timing.LATENCY_FIELDS``, with the thread
count and where they were measured: host, CPU model, executor) from the better.

Durability. The database runs in WAL mode with ``synchronous=FULL`` and every ``put`` is its own
committed transaction. In WAL mode a commit is a ``write()`` of the WAL frames; once it returns the
bytes are in the kernel, so a SIGKILL of this process one instruction later loses nothing
(``synchronous=NORMAL`` already guarantees that). FULL also ``fsync``s the WAL on each commit, so
a finished row survives an OS crash or power cut too; that costs about a millisecond per row,
nothing next to the tenths of a second it takes to measure one. An interrupted writer leaves the
database consistent: the next open replays the committed WAL frames.

Errors. An unwritable location or a file that is not a PruneScope results database raises
``StoreError`` (a ``ValueError``) naming the path and what to do. User files are never deleted or
rewritten to "repair" them.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from compress_core.base.paths import cache_dir
from compress_core.base.recipe import Recipe
from compress_core.base.records import EVAL_MODES
from compress_core.base.timing import LATENCY_FIELDS, better
from compress_core.study.executors.base import WHERE_FIELDS
from compress_core.study.rows import COLUMNS, ID_COLUMNS, result_row, rows_frame

__all__ = ["COLUMNS", "ID_COLUMNS", "MODES", "SCHEMA_VERSION", "ResultStore", "StoreError", "result_row", "rows_frame"]

SCHEMA_VERSION = 2  # 2: a runtime column; version 1 named it in the mode (``quick@openvino``), migrated on open
MODES = EVAL_MODES

# A latency measurement and where it was taken are kept or replaced together (``ResultStore.put``).
_MEASURED_TOGETHER = (*LATENCY_FIELDS, "latency_threads", *WHERE_FIELDS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    model_id TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    mode TEXT NOT NULL,
    runtime TEXT NOT NULL DEFAULT 'torch',
    latency_batch INTEGER NOT NULL,
    kind TEXT,
    sparsity REAL,
    bits INTEGER,
    accuracy REAL,
    size_bytes INTEGER,
    latency_ms_p50 REAL,
    result_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model_id, recipe_json, mode, runtime, latency_batch)
);
CREATE INDEX IF NOT EXISTS results_by_model ON results (model_id, mode, runtime, kind);
"""
_STORED = (
    "model_id, recipe_json, mode, runtime, latency_batch, kind, sparsity, bits, accuracy, size_bytes, "
    "latency_ms_p50, result_json, created_at"
)
# Version 1 rows, with the runtime split off the mode: ``quick@openvino`` -> (``quick``, ``openvino``).
_FROM_V1 = (
    """
INSERT INTO results ("""
    + _STORED
    + """)
SELECT model_id, recipe_json,
    CASE WHEN instr(mode, '@') > 0 THEN substr(mode, 1, instr(mode, '@') - 1) ELSE mode END,
    CASE WHEN instr(mode, '@') > 0 THEN substr(mode, instr(mode, '@') + 1) ELSE 'torch' END,
    latency_batch, kind, sparsity, bits, accuracy, size_bytes, latency_ms_p50, result_json, created_at
FROM results_v1 ORDER BY rowid
"""
)
_WHERE_KEY = "model_id=? AND recipe_json=? AND mode=? AND runtime=? AND latency_batch=?"
_KEY_COLUMNS = {"model_id", "recipe_json", "mode", "latency_batch", "result_json", "created_at"}


class StoreError(ValueError):
    """The results store cannot be opened, written or read; the message says which file and what to do."""


def _finite_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class ResultStore:
    """Measured Results keyed by (model_id, recipe_json, mode, runtime, latency_batch). Thread-safe."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else cache_dir() / "results.sqlite"
        self._lock = threading.RLock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._unwritable(exc.strerror or str(exc)) from None
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            self._setup()
        except StoreError:
            self._conn.close()
            raise
        except sqlite3.Error as exc:
            self._conn.close()
            raise self._error(exc) from None

    # -- errors -------------------------------------------------------------------------------
    def _unwritable(self, reason: str) -> StoreError:
        return StoreError(
            f"cannot write the results store {self.path} ({reason}); make that folder writable "
            f"or set COMPRESS_CACHE_DIR to a writable folder"
        )

    def _error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if any(s in text for s in ("not a database", "malformed", "file is encrypted")):
            return StoreError(
                f"{self.path} is not a readable PruneScope results database ({text}); it was left "
                f"untouched: move or delete it yourself, or set COMPRESS_CACHE_DIR to another folder"
            )
        if any(s in text for s in ("readonly", "read-only", "unable to open", "disk I/O", "permission")):
            return self._unwritable(text)
        return StoreError(f"results store {self.path}: {text}")

    # -- setup --------------------------------------------------------------------------------
    def _setup(self) -> None:
        with self._lock:
            self._conn.execute("PRAGMA busy_timeout = 30000")
            # Read-only checks first, so a file that is not ours is refused before anything is written.
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, 1, SCHEMA_VERSION):
                raise StoreError(
                    f"{self.path} was written by a newer PruneScope (schema {version}, this build reads "
                    f"{SCHEMA_VERSION}); it was left untouched: set COMPRESS_CACHE_DIR to another folder"
                )
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(results)")}
            if columns and not columns >= _KEY_COLUMNS:
                raise StoreError(
                    f"{self.path} holds a 'results' table that is not PruneScope's (columns "
                    f"{', '.join(sorted(columns))}); it was left untouched: set COMPRESS_CACHE_DIR "
                    f"to another folder"
                )
            mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise self._unwritable(f"the file system refused write-ahead logging (journal mode {mode})")
            self._conn.execute("PRAGMA synchronous = FULL")
            if columns and "runtime" not in columns:
                self._migrate_v1()
            self._conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    def _migrate_v1(self) -> None:
        """A version-1 table (the runtime inside the mode) rewritten as version 2 in one transaction: every row
        kept, in its order. Re-checked under the write lock, so two processes opening one file migrate it once."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if "runtime" not in {r[1] for r in conn.execute("PRAGMA table_info(results)")}:
                conn.execute("ALTER TABLE results RENAME TO results_v1")
                conn.execute("DROP INDEX IF EXISTS results_by_model")  # it moved with the table
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(_FROM_V1)
                conn.execute("DROP TABLE results_v1")
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.ProgrammingError as exc:  # e.g. used after close()
                raise StoreError(f"results store {self.path}: {exc}") from None
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    @staticmethod
    def _key(
        model_id: str, recipe_json: str, mode: str, latency_batch: int, runtime: str = "torch"
    ) -> tuple[str, str, str, str, int]:
        if not isinstance(model_id, str) or not model_id:
            raise ValueError(f"model_id must be a non-empty string; got {model_id!r}")
        from compress_core.deploy.runtimes import RUNTIMES  # here, not at the top: the runtimes package imports torch

        if mode not in MODES:
            said = f" (the runtime is its own argument: runtime={mode.partition('@')[2]!r})" if "@" in str(mode) else ""
            raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}{said}")
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
        if isinstance(latency_batch, bool) or not isinstance(latency_batch, int) or latency_batch < 1:
            raise ValueError(f"latency_batch must be a positive integer; got {latency_batch!r}")
        canonical = Recipe.from_json(recipe_json).to_json()  # equal recipes share one key
        return model_id, canonical, mode, runtime, latency_batch

    # -- API ----------------------------------------------------------------------------------
    def put(
        self, model_id: str, recipe_json: str, mode: str, latency_batch: int, result: dict, runtime: str = "torch"
    ) -> dict:
        """Insert or replace one finished result, keeping the better latency measurement of the new
        and the stored one (module docstring); committed (durable) when this returns. Returns the row
        as stored."""
        key = self._key(model_id, recipe_json, mode, latency_batch, runtime)
        if not isinstance(result, dict):
            raise ValueError(f"result must be a dict (Result.to_dict()); got {type(result).__name__}")
        with self._lock:
            old = self.get(model_id, recipe_json, mode, latency_batch, runtime)
            if old is not None and not better(result, old):
                result = {
                    **{k: v for k, v in result.items() if k not in _MEASURED_TOGETHER},
                    **{f: old[f] for f in _MEASURED_TOGETHER if f in old},
                }
            self._write(key, result)
        return result

    def _write(self, key: tuple[str, str, str, str, int], result: dict) -> None:
        recipe = Recipe.from_json(key[1])
        payload = json.dumps(result, sort_keys=True)
        created = datetime.now(UTC).isoformat(timespec="microseconds")
        self._run(
            f"INSERT OR REPLACE INTO results ({_STORED}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *key,
                recipe.prune.kind,
                recipe.prune.sparsity,
                recipe.quant.bits,
                _finite_or_none(result.get("accuracy")),
                result.get("size_bytes"),
                _finite_or_none(result.get("latency_ms_p50")),
                payload,
                created,
            ),
        )

    def get(
        self, model_id: str, recipe_json: str, mode: str, latency_batch: int, runtime: str = "torch"
    ) -> dict | None:
        rows = self._run(
            f"SELECT result_json FROM results WHERE {_WHERE_KEY}",
            self._key(model_id, recipe_json, mode, latency_batch, runtime),
        )
        return self._decode(rows[0][0]) if rows else None

    def has(self, model_id: str, recipe_json: str, mode: str, latency_batch: int, runtime: str = "torch") -> bool:
        key = self._key(model_id, recipe_json, mode, latency_batch, runtime)
        return bool(self._run(f"SELECT 1 FROM results WHERE {_WHERE_KEY}", key))

    def frame(self, model_id: str | None = None) -> pd.DataFrame:
        """Every stored result (of one model, if given) as the wide table, oldest first."""
        sql = "SELECT recipe_json, mode, runtime, result_json FROM results"
        params: tuple = ()
        if model_id is not None:
            sql, params = sql + " WHERE model_id=?", (model_id,)
        rows = []
        for rj, mode, runtime, text in self._run(sql + " ORDER BY created_at, rowid", params):
            result = self._decode(text)
            try:
                rows.append(result_row(result, rj, mode, cached=True, runtime=runtime))
            except ValueError as exc:  # e.g. a recipe written by another version
                raise StoreError(
                    f"{self.path} holds a result for {result.get('model')!r} whose recipe this build "
                    f"cannot read ({exc}); delete that model's rows with ResultStore.delete(model_id)"
                ) from None
        return rows_frame(rows)

    def delete(self, model_id: str | None = None) -> int:
        """Delete all results (of one model, if given); returns how many rows went."""
        with self._lock:
            n = self.count(model_id)
            if model_id is None:
                self._run("DELETE FROM results")
            else:
                self._run("DELETE FROM results WHERE model_id=?", (model_id,))
            return n

    def count(self, model_id: str | None = None) -> int:
        if model_id is None:
            return int(self._run("SELECT COUNT(*) FROM results")[0][0])
        return int(self._run("SELECT COUNT(*) FROM results WHERE model_id=?", (model_id,))[0][0])

    def __len__(self) -> int:
        return self.count()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _decode(self, text: str) -> dict:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"{self.path} holds a result that is not valid JSON ({exc.msg}); "
                f"delete that model's rows with ResultStore.delete(model_id)"
            ) from None
