"""The one headline per recipe: the speed-up it prints is the ratio of the numbers it prints beside it."""

from __future__ import annotations

import json

import pytest

from compress_core.present.headline import headline, ratio, speed_words


def _result(**over) -> dict:
    base = {
        "model": "lenet5-mnist",
        "recipe_label": "structured 50 %",
        "accuracy": 0.97,
        "accuracy_ci_low": 0.96,
        "accuracy_ci_high": 0.98,
        "eval_samples": 1000,
        "dense_accuracy": 0.98,
        "params_nonzero": 20_000,
        "params_total": 20_000,
        "dense_params": 61_706,
        "size_bytes": 30_000,
        "dense_size_bytes": 250_000,
        "dense_artifact_bytes": 240_000,
        "latency_ms_p50": 2.81,
        "dense_latency_ms_p50": 2.34,
        "speedup": 1.04,  # the paired fastest-call ratio: not what the headline prints
        "latency_threads": 2,
        "latency_batch": 1,
        "latency_kernels": "fp32 dense",
        "latency_noisy": False,
        "latency_note": "",
        "runtime": "torch",
    }
    return base | over


def test_the_speedup_is_the_ratio_of_the_medians_shown_not_the_fastest_call_ratio():
    h = headline(_result())
    assert h.speedup == pytest.approx(2.34 / 2.81)
    assert h.speedup < 1  # 2.81 ms against dense 2.34 ms is slower, whatever the fastest calls said
    assert "slower" in h.speed_text() and "faster" not in h.speed_text()
    assert "2.34 ms" in h.speed_text() and "2.81 ms" in h.speed_text()


def test_every_latency_names_its_runtime_threads_and_batch():
    h = headline(_result(runtime="onnxruntime", latency_threads=4, latency_batch=8, eager_latency_ms_p50=3.0))
    text = h.latency_text()
    assert "ONNX Runtime" in text and "4 threads" in text and "batch 8" in text
    assert h.runtime_label == "ONNX Runtime"


def test_the_eager_speedup_on_another_runtime_is_eager_dense_over_the_shown_latency():
    # the every-runtime chart once printed 0.997 ms as "10.1×" against an eager dense of about 2.34 ms
    h = headline(_result(runtime="openvino", latency_ms_p50=0.997, eager_latency_ms_p50=2.34, speedup_vs_eager=10.1))
    assert h.speedup_vs_eager == pytest.approx(2.34 / 0.997)
    assert h.eager_text() == "2.35× faster vs eager PyTorch dense 2.34 ms"


def test_a_noisy_latency_is_marked_wherever_its_speedup_shows():
    h = headline(_result(latency_noisy=True, latency_note="rounds disagree by ± 30 %"))
    assert h.noisy and h.noisy_reason == "rounds disagree by ± 30 %"
    assert "noisy" in h.latency_text() and "noisy" in h.speed_text()


def test_unmeasured_latency_has_no_speedup_and_says_so():
    h = headline(_result(latency_ms_p50=None, dense_latency_ms_p50=None, latency_noisy=True))
    assert h.latency_ms is None and h.speedup is None and not h.noisy
    assert h.latency_text() == "not measured" and h.speed_text() == ""


def test_the_rest_of_the_headline_and_its_json():
    h = headline(_result())
    assert (h.accuracy, h.accuracy_ci_low, h.accuracy_ci_high) == (0.97, 0.96, 0.98)
    assert (h.params_nonzero, h.file_bytes, h.dense_file_bytes) == (20_000, 30_000, 240_000)
    d = json.loads(json.dumps(h.to_dict()))
    assert d["speedup"] == pytest.approx(2.34 / 2.81) and d["runtime"] == "torch" and d["threads"] == 2


def test_ratio_and_words():
    assert ratio(None, 1.0) is None and ratio(1.0, 0.0) is None and ratio(2.0, 1.0) == 2.0
    assert speed_words(2.0) == "2.00× faster" and speed_words(0.5) == "2.00× slower"
    assert speed_words(1.001) == "same as dense" and speed_words(None) == ""


def test_the_every_runtime_chart_labels_each_bar_with_the_ratio_of_its_own_numbers():
    import pandas as pd

    from compress_core.present import plots

    df = pd.DataFrame(
        {
            "runtime_label": ["PyTorch eager", "ONNX Runtime", "OpenVINO"],
            "latency_ms_p50": [2.81, 0.975, 0.997],
            "latency_ms_iqr": [0.1, 0.01, 0.01],
            "speedup_vs_eager": [1.04, 9.9, 10.1],  # what the chart used to print
            "eager_latency_ms_p50": [2.34, 2.34, 2.34],
            "accuracy": [0.98, 0.98, 0.98],
            "error": [None, None, None],
            "latency_noisy": [False, True, False],
        }
    )
    text = plots.runtimes_bars(df).data[0].text
    assert text[1] == "0.975 ms · 2.40× vs eager 2.34 ms (noisy)"
    assert text[2] == "0.997 ms · 2.35× vs eager 2.34 ms"
    assert not any("9.9" in t or "10.1" in t for t in text)


def test_the_staircase_hover_speedup_is_dense_over_the_shown_latency():
    import pandas as pd

    from compress_core.present import plots

    df = pd.DataFrame(
        {
            "fraction_kept": [1.0, 0.5],
            "latency_ms_p50": [2.0, 1.0],
            "latency_ms_iqr": [0.0, 0.0],
            "speedup": [1.0, 3.0],
            "dense_latency_ms_p50": [2.0, 2.0],
            "mac_reduction": [1.0, 3.5],
        }
    )
    custom = plots.latency_staircase(df).data[0].customdata
    assert [row[0] for row in custom] == [pytest.approx(2.0), pytest.approx(1.0)]  # sorted by fraction kept


def test_the_sweep_hover_on_the_latency_axis_is_the_headline():
    import pandas as pd

    from compress_core.present import plots

    row = _result(latency_threads=2.0, latency_batch=1.0, runtime=None, latency_noisy=True)
    df = pd.DataFrame([row | {"kind": "structured", "label": "structured 50 %"}])
    hover = plots.tradeoff_scatter(df, x="latency_ms_p50").data[0].text[0]
    assert "latency 2.81 ms (median) · PyTorch eager · 2 threads · batch 1 · noisy" in hover
    assert "1.20× slower: dense 2.34 ms ÷ 2.81 ms (noisy)" in hover and "1.04" not in hover
