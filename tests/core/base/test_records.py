"""Plain records: the rules that read a result dict."""

from __future__ import annotations

from compress_core.base.records import dense_file_bytes, size_is_estimate


def test_the_dense_file_is_the_dense_artefact_where_it_was_measured():
    assert dense_file_bytes({"dense_artifact_bytes": 240_120, "dense_size_bytes": 247_000}) == 240_120
    assert dense_file_bytes({"dense_artifact_bytes": None, "dense_size_bytes": 247_000}) == 247_000
    assert dense_file_bytes({"dense_size_bytes": 247_000.0}) == 247_000  # older results: no artefact size


def test_a_size_method_naming_an_estimate_is_one():
    assert size_is_estimate("Estimate: int8 kernels' packed weights") and not size_is_estimate("psz file")
    assert not size_is_estimate(None)
