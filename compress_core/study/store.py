"""Results on disk: one SQLite table of measured Results, so sweeps resume instead of recomputing.

Each row is keyed by (model_id, recipe_json, mode, latency_batch) and holds the whole
``pipeline.Result`` as JSON, a few indexed columns for querying, and ``created_at``.

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

SCHEMA_VERSION = 1
MODES = EVAL_MODES

# The wide table shared by ``ResultStore.frame`` and ``sweep.run_sweep``: one row per recipe.
ID_COLUMNS = [
    "model",
    "recipe_json",
    "label",
    "kind",
    "criterion",
    "scope",
    "sparsity",
    "bits",
    "int8",
    "recovery",
    "mode",
]
FLOAT_COLUMNS = [
    "accuracy",
    "accuracy_oneshot",  # without the recipe's post-training recovery (None when it has none)
    "recovery_s",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "agreement",
    "dense_accuracy",
    "compression_ratio",
    "latency_ms_p50",
    "latency_ms_iqr",
    "dense_latency_ms_p50",
    "speedup",
    "speedup_spread",
    "latency_load",
]
INT_COLUMNS = [
    "eval_samples",
    "params_total",
    "params_nonzero",
    "dense_params",
    "macs",
    "dense_macs",
    "size_bytes",
    "dense_size_bytes",
    "latency_batch",
    "latency_threads",
    "dense_artifact_bytes",
    "attempts",
]
# Where a row was measured (``executors.where``); rows stored before these existed read as missing.
WHERE_COLUMNS = list(WHERE_FIELDS)
TEXT_COLUMNS = ["eval_set", "size_method", "latency_kernels", "simulated", "latency_note", *WHERE_COLUMNS]
BOOL_COLUMNS = ["int8", "latency_noisy", "cached"]
COLUMNS = [
    *ID_COLUMNS,
    "eval_set",
    "eval_samples",
    "accuracy",
    "accuracy_oneshot",
    "recovery_s",
    "accuracy_ci_low",
    "accuracy_ci_high",
    "agreement",
    "dense_accuracy",
    "params_total",
    "params_nonzero",
    "dense_params",
    "macs",
    "dense_macs",
    "size_bytes",
    "dense_size_bytes",
    "size_method",
    "compression_ratio",
    "latency_ms_p50",
    "latency_ms_iqr",
    "latency_batch",
    "latency_threads",
    "latency_kernels",
    "dense_latency_ms_p50",
    "speedup",
    "simulated",
    "speedup_spread",
    "latency_noisy",
    "latency_load",
    "latency_note",
    "dense_artifact_bytes",
    *WHERE_COLUMNS,
    "attempts",
    "cached",
]
# A latency measurement and where it was taken are kept or replaced together (``ResultStore.put``).
_MEASURED_TOGETHER = (*LATENCY_FIELDS, "latency_threads", *WHERE_FIELDS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    model_id TEXT NOT NULL,
    recipe_json TEXT NOT NULL,
    mode TEXT NOT NULL,
    latency_batch INTEGER NOT NULL,
    kind TEXT,
    sparsity REAL,
    bits INTEGER,
    accuracy REAL,
    size_bytes INTEGER,
    latency_ms_p50 REAL,
    result_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model_id, recipe_json, mode, latency_batch)
);
CREATE INDEX IF NOT EXISTS results_by_model ON results (model_id, mode, kind);
"""
_KEY_COLUMNS = {"model_id", "recipe_json", "mode", "latency_batch", "result_json", "created_at"}


class StoreError(ValueError):
    """The results store cannot be opened, written or read; the message says which file and what to do."""


def result_row(result: dict, recipe_json: str, mode: str, cached: bool) -> dict:
    """Flatten a ``Result.to_dict()`` into one row of the wide table (``COLUMNS``)."""
    recipe = Recipe.from_json(recipe_json)
    row = {
        "model": result.get("model"),
        "recipe_json": recipe_json,
        "label": recipe.label(),
        "kind": recipe.prune.kind,
        "criterion": recipe.prune.criterion,
        "scope": recipe.prune.scope,
        "sparsity": recipe.prune.sparsity,
        "bits": recipe.quant.bits,
        "int8": recipe.quant.int8,
        "recovery": recipe.recovery,
        "mode": mode,
    }
    for name in FLOAT_COLUMNS + INT_COLUMNS + TEXT_COLUMNS:
        row[name] = result.get(name)
    row["simulated"] = "; ".join(result.get("simulated") or [])
    row["latency_note"] = result.get("latency_note") or ""
    row["latency_noisy"] = bool(result.get("latency_noisy"))
    row["cached"] = bool(cached)
    return row


def rows_frame(rows: list[dict]) -> pd.DataFrame:
    """The wide DataFrame with fixed columns and dtypes (missing measurements are NaN)."""
    df = pd.DataFrame(rows, columns=COLUMNS)
    for name in [*FLOAT_COLUMNS, "sparsity"]:
        df[name] = pd.to_numeric(df[name], errors="coerce").astype("float64")
    for name in [*INT_COLUMNS, "bits"]:
        df[name] = pd.to_numeric(df[name], errors="coerce")
        if not df[name].isna().any():
            df[name] = df[name].astype("int64")
    for name in BOOL_COLUMNS:
        df[name] = df[name].fillna(False).astype(bool)
    return df


def _finite_or_none(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


class ResultStore:
    """Measured Results keyed by (model_id, recipe_json, mode, latency_batch). Thread-safe."""

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
            if version not in (0, SCHEMA_VERSION):
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
            self._conn.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")

    def _run(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.ProgrammingError as exc:  # e.g. used after close()
                raise StoreError(f"results store {self.path}: {exc}") from None
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    @staticmethod
    def _key(model_id: str, recipe_json: str, mode: str, latency_batch: int) -> tuple[str, str, str, int]:
        if not isinstance(model_id, str) or not model_id:
            raise ValueError(f"model_id must be a non-empty string; got {model_id!r}")
        from compress_core.deploy.runtimes import RUNTIMES  # here, not at the top: the runtimes package imports torch

        eval_mode, _, runtime = mode.partition("@") if isinstance(mode, str) else (mode, "", "")
        if eval_mode not in MODES or (runtime and runtime not in RUNTIMES):
            raise ValueError(
                f"mode must be one of {', '.join(MODES)}, optionally @runtime ({', '.join(RUNTIMES)}); got {mode!r}"
            )
        if isinstance(latency_batch, bool) or not isinstance(latency_batch, int) or latency_batch < 1:
            raise ValueError(f"latency_batch must be a positive integer; got {latency_batch!r}")
        canonical = Recipe.from_json(recipe_json).to_json()  # equal recipes share one key
        return model_id, canonical, mode, latency_batch

    # -- API ----------------------------------------------------------------------------------
    def put(self, model_id: str, recipe_json: str, mode: str, latency_batch: int, result: dict) -> dict:
        """Insert or replace one finished result, keeping the better latency measurement of the new
        and the stored one (module docstring); committed (durable) when this returns. Returns the row
        as stored."""
        key = self._key(model_id, recipe_json, mode, latency_batch)
        if not isinstance(result, dict):
            raise ValueError(f"result must be a dict (Result.to_dict()); got {type(result).__name__}")
        with self._lock:
            old = self.get(model_id, recipe_json, mode, latency_batch)
            if old is not None and not better(result, old):
                result = {
                    **{k: v for k, v in result.items() if k not in _MEASURED_TOGETHER},
                    **{f: old[f] for f in _MEASURED_TOGETHER if f in old},
                }
            self._write(key, result)
        return result

    def _write(self, key: tuple[str, str, str, int], result: dict) -> None:
        recipe = Recipe.from_json(key[1])
        payload = json.dumps(result, sort_keys=True)
        created = datetime.now(UTC).isoformat(timespec="microseconds")
        self._run(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    def get(self, model_id: str, recipe_json: str, mode: str, latency_batch: int) -> dict | None:
        rows = self._run(
            "SELECT result_json FROM results WHERE model_id=? AND recipe_json=? AND mode=? AND latency_batch=?",
            self._key(model_id, recipe_json, mode, latency_batch),
        )
        return self._decode(rows[0][0]) if rows else None

    def has(self, model_id: str, recipe_json: str, mode: str, latency_batch: int) -> bool:
        return bool(
            self._run(
                "SELECT 1 FROM results WHERE model_id=? AND recipe_json=? AND mode=? AND latency_batch=?",
                self._key(model_id, recipe_json, mode, latency_batch),
            )
        )

    def frame(self, model_id: str | None = None) -> pd.DataFrame:
        """Every stored result (of one model, if given) as the wide table, oldest first."""
        sql = "SELECT recipe_json, mode, result_json FROM results"
        params: tuple = ()
        if model_id is not None:
            sql, params = sql + " WHERE model_id=?", (model_id,)
        rows = []
        for rj, mode, text in self._run(sql + " ORDER BY created_at, rowid", params):
            result = self._decode(text)
            try:
                rows.append(result_row(result, rj, mode, cached=True))
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
