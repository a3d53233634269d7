"""The Sweep page's recovery and Ray options."""

from __future__ import annotations

import json

from compress_core.study.store import ResultStore

from .conftest import texts


def _open_sweep(app):
    app.switch_page("pages/sweep.py").run()
    assert not app.exception and not app.error, texts(app.error)
    return app


def test_a_sweep_applies_the_chosen_recovery_to_every_compressed_point(app, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path))  # a store of its own
    _open_sweep(app)
    assert app.radio(key="sweep_recovery").value == "reconstruct"  # LeNet-5's default, as on Explore
    app.multiselect(key="sweep_sparsities").set_value([0.0, 0.5])
    app.multiselect(key="sweep_bits").set_value([32])
    next(b for b in app.button if b.label == "Run sweep").click().run()
    assert not app.exception and not app.error, texts(app.error)
    with ResultStore() as store:  # what the sweep wrote (the page's table shows a subset of the columns)
        table = store.frame("lenet5-mnist")
    recovery = {json.loads(r)["prune"]["sparsity"]: json.loads(r).get("recovery", "none") for r in table["recipe_json"]}
    assert recovery == {0.0: "none", 0.5: "reconstruct"}  # the dense point has nothing to recover
    assert table.loc[table["sparsity"] == 0.5, "accuracy_oneshot"].notna().all()


def test_run_on_ray_is_offered_only_with_a_cluster_address(app, monkeypatch):
    _open_sweep(app)
    assert not [c for c in app.checkbox if c.label.startswith("Run on Ray")]
    monkeypatch.setenv("PRUNESCOPE_RAY_ADDRESS", "127.0.0.1:6379")
    app.run()
    box = next(c for c in app.checkbox if c.label.startswith("Run on Ray"))
    assert box.label == "Run on Ray (127.0.0.1:6379)" and box.value is False


def test_a_sweep_on_a_deployment_runtime_is_stored_and_shown_apart(app, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path))  # a store of its own
    _open_sweep(app)
    assert app.selectbox(key="sweep_runtime").value == "torch"
    app.selectbox(key="sweep_runtime").set_value("onnxruntime")
    app.multiselect(key="sweep_sparsities").set_value([0.0])
    app.multiselect(key="sweep_bits").set_value([32])
    next(b for b in app.button if b.label == "Run sweep").click().run()
    assert not app.exception and not app.error, texts(app.error)
    assert "on ONNX Runtime" in texts(app.success)
    assert "Showing the rows measured on ONNX Runtime" in texts(app.caption)
    with ResultStore() as store:
        stored = store.frame("lenet5-mnist")
        assert set(stored["mode"]) == {"quick"} and set(stored["runtime"]) == {"onnxruntime"}
    app.selectbox(key="sweep_runtime").set_value("torch").run()  # eager PyTorch's rows: none measured yet
    assert "No stored results for this model" in texts(app.info)
