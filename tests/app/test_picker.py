"""The model picker on a fresh clone (COMPRESS_DATA_DIR an empty folder): what is ready comes first, and
every other model says what it needs instead of reading "weights missing"."""

from __future__ import annotations

import pytest

from .conftest import new_app


@pytest.mark.parametrize("offline", [True, False])
def test_a_fresh_clone_lists_ready_models_first_and_says_what_the_rest_need(tmp_path, monkeypatch, offline):
    monkeypatch.setenv("COMPRESS_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("COMPRESS_CACHE_DIR", str(tmp_path / "cache"))
    if offline:
        monkeypatch.setenv("PRUNESCOPE_OFFLINE", "1")
    else:
        monkeypatch.delenv("PRUNESCOPE_OFFLINE", raising=False)
    at = new_app().run()
    assert not at.exception
    options = at.sidebar.selectbox(key="model_id").options
    assert options[:2] == ["LeNet-5 (MNIST)", "LeNet-300-100 (MNIST)"], options
    assert not any("weights missing" in o for o in options), options
    rest = options[2:]
    assert len(rest) == 8 and all(" · " in o for o in rest), rest  # short enough for the sidebar (browser test)
    if offline:
        assert "ResNet-20 · needs data" in rest and "ResNet-18 · needs weights" in rest, rest
    else:
        assert "ResNet-20 · downloads on use" in rest, rest
