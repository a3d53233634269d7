"""The results store: round trip, resume keys, thread safety, and clear errors for bad locations/files."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import threading

import pytest

from compress_core.base.recipe import Recipe
from compress_core.study.store import COLUMNS, ResultStore, StoreError
from tests.conftest import ROOT

DENSE = Recipe()
HALF = Recipe().with_prune(kind="unstructured", sparsity=0.5)


def _result(accuracy: float, size_bytes: int = 1000, **extra) -> dict:
    return {
        "model": "lenet5-mnist",
        "accuracy": accuracy,
        "accuracy_ci_low": accuracy - 0.01,
        "accuracy_ci_high": min(1.0, accuracy + 0.01),
        "agreement": None,
        "size_bytes": size_bytes,
        "params_total": 10,
        "params_nonzero": 5,
        "latency_ms_p50": None,
        "eval_set": "mnist-quick",
        "eval_samples": 1000,
        "simulated": ["a", "b"],
        **extra,
    }


@pytest.fixture
def store(tmp_path):
    with ResultStore(tmp_path / "results.sqlite") as s:
        yield s


def test_put_then_get_returns_the_same_result(store):
    store.put("lenet5-mnist", HALF.to_json(), "quick", 1, _result(0.9))
    assert store.get("lenet5-mnist", HALF.to_json(), "quick", 1) == _result(0.9)
    assert store.has("lenet5-mnist", HALF.to_json(), "quick", 1)


def test_key_includes_mode_batch_and_model(store):
    store.put("lenet5-mnist", HALF.to_json(), "quick", 1, _result(0.9))
    assert not store.has("lenet5-mnist", HALF.to_json(), "full", 1)
    assert not store.has("lenet5-mnist", HALF.to_json(), "quick", 8)
    assert not store.has("lenet300-mnist", HALF.to_json(), "quick", 1)
    assert store.get("lenet5-mnist", DENSE.to_json(), "quick", 1) is None


def test_equal_recipes_share_a_key_whatever_the_json_spelling(store):
    spelled = '{"prune": {"kind": "unstructured", "sparsity": 0.5}}'  # defaults omitted, other spacing
    store.put("lenet5-mnist", spelled, "quick", 1, _result(0.9))
    assert store.has("lenet5-mnist", HALF.to_json(), "quick", 1)


def test_put_replaces_an_existing_row(store):
    store.put("lenet5-mnist", HALF.to_json(), "quick", 1, _result(0.9))
    store.put("lenet5-mnist", HALF.to_json(), "quick", 1, _result(0.8))
    assert len(store) == 1
    assert store.get("lenet5-mnist", HALF.to_json(), "quick", 1)["accuracy"] == 0.8


def test_rows_survive_closing_and_reopening(tmp_path):
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as s:
        s.put("lenet5-mnist", HALF.to_json(), "quick", 1, _result(0.9))
    with ResultStore(path) as s:
        assert s.get("lenet5-mnist", HALF.to_json(), "quick", 1)["accuracy"] == 0.9


def test_default_path_is_in_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache"))
    with ResultStore() as s:
        assert s.path == tmp_path / "cache" / "results.sqlite"
        assert s.path.is_file()


def test_database_runs_in_wal_mode(store):
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_frame_has_the_wide_columns_and_filters_by_model(store):
    store.put("lenet5-mnist", DENSE.to_json(), "quick", 1, _result(0.98, 2000))
    store.put("lenet5-mnist", HALF.to_json(), "quick", 1, _result(0.97, 1000))
    store.put("lenet300-mnist", HALF.to_json(), "full", 1, _result(0.96))
    df = store.frame("lenet5-mnist")
    assert list(df.columns) == COLUMNS
    assert list(df["label"]) == ["dense fp32", "unstructured l1 global 50%"]
    assert list(df["sparsity"]) == [0.0, 0.5]
    assert df["cached"].all() and df["agreement"].isna().all()
    assert df["simulated"].iloc[0] == "a; b"
    assert len(store.frame()) == 3


def test_empty_frame_still_has_the_columns(store):
    df = store.frame()
    assert df.empty and list(df.columns) == COLUMNS


def test_delete_by_model_keeps_the_other_models(store):
    store.put("lenet5-mnist", HALF.to_json(), "quick", 1, _result(0.9))
    store.put("lenet300-mnist", HALF.to_json(), "quick", 1, _result(0.9))
    assert store.delete("lenet5-mnist") == 1
    assert store.count() == 1 and store.count("lenet300-mnist") == 1
    assert store.delete() == 1 and len(store) == 0


def test_concurrent_puts_from_threads_all_land(store):
    recipes = [Recipe().with_prune(kind="unstructured", sparsity=i / 100) for i in range(1, 41)]

    def work(part: list[Recipe]) -> None:
        for r in part:
            store.put("lenet5-mnist", r.to_json(), "quick", 1, _result(0.9))
            assert store.has("lenet5-mnist", r.to_json(), "quick", 1)

    threads = [threading.Thread(target=work, args=(recipes[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store) == 40


def test_bad_keys_raise_value_errors(store):
    with pytest.raises(ValueError, match="mode"):
        store.put("lenet5-mnist", HALF.to_json(), "fast", 1, _result(0.9))
    with pytest.raises(ValueError, match="latency_batch"):
        store.has("lenet5-mnist", HALF.to_json(), "quick", 0)
    with pytest.raises(ValueError, match="recipe"):
        store.get("lenet5-mnist", "not json", "quick", 1)


def test_unwritable_location_names_the_path_and_the_fix(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(StoreError, match="COMPRESS_CACHE_DIR") as info:
        ResultStore(blocker / "results.sqlite")
    assert str(blocker) in str(info.value)
    assert isinstance(info.value, ValueError)


def _unprivileged(code: str) -> list[str] | None:
    """A command running ``code`` without root's power to ignore file permissions (None: cannot)."""
    if os.name != "posix":
        return None
    if os.geteuid() != 0:
        return [sys.executable, "-c", code]
    capsh = shutil.which("capsh")
    if capsh is None:
        return None
    shell = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    return [capsh, "--drop=cap_dac_override,cap_dac_read_search", "--", "-c", shell]


@pytest.mark.parametrize("existing_db", [False, True])
def test_read_only_cache_dir_raises_a_clear_error(tmp_path, existing_db):
    ro = tmp_path / "ro"
    ro.mkdir()
    if existing_db:
        ResultStore(ro / "results.sqlite").close()
        (ro / "results.sqlite").chmod(0o444)
    code = (
        f"from compress_core.study.store import ResultStore, StoreError\n"
        f"try:\n    ResultStore({str(ro / 'results.sqlite')!r})\n"
        f"except StoreError as e:\n    print('StoreError:', e)\n"
    )
    cmd = _unprivileged(code)
    if cmd is None:
        pytest.skip("cannot drop root's file-permission override here")
    ro.chmod(0o555)
    try:
        out = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
    finally:
        ro.chmod(0o755)
    assert out.stdout.startswith("StoreError:"), out.stdout + out.stderr
    assert str(ro) in out.stdout and "COMPRESS_CACHE_DIR" in out.stdout


def test_corrupt_file_raises_and_is_left_untouched(tmp_path):
    path = tmp_path / "results.sqlite"
    garbage = b"this is not sqlite" * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreError, match="not a readable PruneScope results database") as info:
        ResultStore(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == garbage


def test_foreign_database_with_another_results_table_is_refused(tmp_path):
    path = tmp_path / "results.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO results (name) VALUES ('keep me')")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not PruneScope's"):
        ResultStore(path)
    con = sqlite3.connect(path)
    assert con.execute("SELECT name FROM results").fetchall() == [("keep me",)]
    con.close()


def test_use_after_close_raises_store_error(tmp_path):
    s = ResultStore(tmp_path / "results.sqlite")
    s.close()
    with pytest.raises(StoreError):
        s.count()


def test_a_row_this_build_cannot_read_is_reported_not_hidden(store):
    store.put("lenet5-mnist", HALF.to_json(), "quick", 1, _result(0.9))
    store._conn.execute("UPDATE results SET recipe_json = ?", ('{"version": 99}',))
    with pytest.raises(StoreError, match="delete that model's rows"):
        store.frame()
    assert store.count() == 1


def _timed(speedup: float, spread: float | None, noisy: bool | None, accuracy: float = 0.9, **extra) -> dict:
    out = _result(
        accuracy,
        latency_ms_p50=1.0 / speedup,
        dense_latency_ms_p50=1.0,
        speedup=speedup,
        latency_ms_iqr=0.01,
        latency_kernels="fp32",
        **extra,
    )
    if spread is not None:
        out.update(
            speedup_spread=spread,
            latency_noisy=noisy,
            latency_load=0.5,
            latency_note="machine busy: load 4.0 on 2 CPU(s)" if noisy else "",
        )
    return out


def test_re_measuring_keeps_the_better_quality_latency_not_the_first(store):
    key = ("lenet5-mnist", HALF.to_json(), "quick", 1)
    store.put(*key, _timed(0.31, 0.40, True))  # a noisy first measurement (the +225 % "slower" one)
    store.put(*key, _timed(1.9, 0.03, False))
    assert store.get(*key)["speedup"] == 1.9
    kept = store.put(*key, _timed(0.5, 0.30, True, accuracy=0.91))  # noisier again: latency kept, rest new
    stored = store.get(*key)
    assert stored == kept and stored["speedup"] == 1.9 and stored["latency_noisy"] is False
    assert stored["accuracy"] == 0.91


def test_a_paired_measurement_replaces_a_row_written_before_paired_timing(store):
    key = ("lenet5-mnist", HALF.to_json(), "quick", 1)
    store.put(*key, _timed(3.0, None, None))
    store.put(*key, _timed(1.2, 0.2, True))
    assert store.get(*key)["speedup"] == 1.2


def test_frame_carries_the_noisy_verdict_and_spread(store):
    store.put("lenet5-mnist", HALF.to_json(), "quick", 1, _timed(1.2, 0.2, True))
    store.put("lenet5-mnist", DENSE.to_json(), "quick", 1, _result(0.98))
    df = store.frame("lenet5-mnist")
    assert df["latency_noisy"].tolist() == [True, False] and df["latency_noisy"].dtype == bool
    assert df["speedup_spread"].iloc[0] == 0.2 and df["latency_note"].iloc[0].startswith("machine busy")


# The version-1 schema exactly as compress_core/study/store.py wrote it: the runtime inside the mode.
_V1_SCHEMA = """
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


def _v1_file(path, rows: list[tuple[str, str, str, int, float]]) -> None:
    """A results file as version 1 wrote it: (model, recipe JSON, mode such as ``quick@openvino``, batch, accuracy)."""
    con = sqlite3.connect(path)
    con.executescript(f"BEGIN; {_V1_SCHEMA} PRAGMA user_version = 1; COMMIT;")
    for i, (model, rj, mode, batch, acc) in enumerate(rows):
        runtime = mode.partition("@")[2] or "torch"
        payload = json.dumps({**_result(acc), "runtime": runtime}, sort_keys=True)
        con.execute(
            "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (model, rj, mode, batch, "unstructured", 0.5, 32, acc, 1000, None, payload, f"2026-01-01T00:00:{i:02d}"),
        )
    con.commit()
    con.close()


def test_a_version_1_file_is_migrated_on_open_and_loses_no_row(tmp_path):
    path = tmp_path / "results.sqlite"
    rows = [
        ("lenet5-mnist", HALF.to_json(), "quick", 1, 0.91),
        ("lenet5-mnist", HALF.to_json(), "quick@openvino", 1, 0.92),  # the same recipe on another runtime
        ("lenet5-mnist", HALF.to_json(), "full@onnxruntime", 1, 0.93),
        ("lenet5-mnist", HALF.to_json(), "quick@openvino", 8, 0.94),  # and at another batch
        ("lenet5-mnist", DENSE.to_json(), "full", 1, 0.95),
        ("lenet300-mnist", DENSE.to_json(), "quick@executorch", 1, 0.96),
    ]
    _v1_file(path, rows)
    with ResultStore(path) as store:
        assert len(store) == len(rows)
        for model, rj, old_mode, batch, acc in rows:
            mode, _, runtime = old_mode.partition("@")
            got = store.get(model, rj, mode, batch, runtime or "torch")
            assert got is not None and got["accuracy"] == acc and got["runtime"] == (runtime or "torch"), old_mode
        frame = store.frame()
        assert list(frame["accuracy"]) == [r[4] for r in rows], "every row, in the order it was written"
        assert list(frame["mode"]) == ["quick", "quick", "full", "quick", "full", "quick"]
        assert list(frame["runtime"]) == ["torch", "openvino", "onnxruntime", "openvino", "torch", "executorch"]
        assert not store.has("lenet5-mnist", HALF.to_json(), "quick", 8), "the eager row at batch 8 never existed"
        store.put("lenet5-mnist", DENSE.to_json(), "quick", 1, _result(0.97), runtime="openvino")  # writes work
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    assert "runtime" in {r[1] for r in con.execute("PRAGMA table_info(results)")}
    assert {r[0] for r in con.execute("SELECT name FROM sqlite_master")} >= {"results", "results_by_model"}
    assert "results_v1" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
    with ResultStore(path) as store:  # opening a migrated file again changes nothing
        assert len(store) == len(rows) + 1
        runtimes = ["torch", "openvino", "onnxruntime", "openvino", "torch", "executorch"]
        assert list(store.frame()["runtime"]) == [*runtimes, "openvino"]


def test_the_runtime_is_part_of_the_key_and_not_of_the_mode(store):
    store.put("lenet5-mnist", HALF.to_json(), "quick", 1, _result(0.9), runtime="onnxruntime")
    assert not store.has("lenet5-mnist", HALF.to_json(), "quick", 1)  # eager PyTorch's row is another one
    assert store.get("lenet5-mnist", HALF.to_json(), "quick", 1, "onnxruntime") == _result(0.9)
    assert list(store.frame()["runtime"]) == ["onnxruntime"] and list(store.frame()["mode"]) == ["quick"]
    with pytest.raises(ValueError, match="runtime='openvino'"):
        store.put("lenet5-mnist", HALF.to_json(), "quick@openvino", 1, _result(0.9))
    with pytest.raises(ValueError, match="runtime must be one of"):
        store.get("lenet5-mnist", HALF.to_json(), "quick", 1, "tpu")
