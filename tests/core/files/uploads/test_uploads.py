"""Bring your own model: every accepted format round-trips to a runnable model, and every bad or
hostile file is refused with a message that says why, before any of its code can run."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import pytest
import torch
from safetensors.torch import save as st_save
from torch import nn

from compress_core.base.recipe import PruneSpec, QuantSpec, Recipe
from compress_core.base.settings import MeasureSettings
from compress_core.bench.workbench import Workbench, apply_recipe
from compress_core.files.uploads import UploadError, load_upload, prunable, upload_spec
from compress_core.models import load

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit.* deprecation notices in torch 2.14


# -- models defined at module level so torch.jit.script can read their source -----------------------
class Scaled(nn.Module):
    """A LeNet-5 inside a wrapper: parameter names match no zoo architecture."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = load("lenet5-mnist")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * 1.0


class SetStateWriter(nn.Module):
    def __init__(self, marker: str) -> None:
        super().__init__()
        self.w = torch.ones(2)
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.w

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return (self.w, self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        torch.save(state[0], state[1])  # would write a file inside torch.jit.load
        self.w = state[0]
        self.marker = state[1]
        self.training = state[2]


class ForwardWriter(nn.Module):
    def __init__(self, marker: str) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.marker = marker

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.save(x, self.marker)  # aten::save: file access at inference time
        return self.fc(x)


class Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# -- helpers ---------------------------------------------------------------------------------------
def _bytes(save, obj, **kw) -> bytes:
    buf = io.BytesIO()
    save(obj, buf, **kw)
    return buf.getvalue()


def _rezip(raw: bytes, edit) -> bytes:
    """Copy a zip archive, passing each (name, data) through ``edit``."""
    src, out = zipfile.ZipFile(io.BytesIO(raw)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = edit(name, src.read(name))
            if data is not None:
                dst.writestr(name, data)
    return out.getvalue()


@pytest.fixture(scope="module")
def lenet():
    return load("lenet5-mnist")


@pytest.fixture(scope="module")
def x():
    return torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))


@pytest.fixture()
def marker(tmp_path):
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "code from an uploaded file ran"


def _same(a: nn.Module, b: nn.Module, x: torch.Tensor) -> bool:
    with torch.no_grad():
        return torch.allclose(a(x), b(x), atol=1e-5)


# -- accepted formats ------------------------------------------------------------------------------
def test_safetensors_state_dict_is_matched_to_its_architecture(lenet, x):
    u = load_upload(st_save(lenet.state_dict()), "my_lenet.safetensors")
    assert (u.kind, u.arch, u.input_shape) == ("state_dict", "lenet5-mnist", (1, 28, 28))
    assert _same(u.model, lenet, x) and prunable(u) and not u.model.training


def test_torch_save_checkpoint_with_wrapper_and_dataparallel_prefix(lenet, x, tmp_path):
    ckpt = {"epoch": 7, "state_dict": {f"module.{k}": v for k, v in lenet.state_dict().items()}}
    path = tmp_path / "ckpt.pth"
    torch.save(ckpt, path)
    u = load_upload(path, path.name, arch="lenet5-mnist")
    assert u.arch == "lenet5-mnist" and _same(u.model, lenet, x) and u.size_bytes == path.stat().st_size
    assert any("checkpoint['state_dict']" in n for n in u.notes) and any("module." in n for n in u.notes)


def test_legacy_non_zip_torch_save_loads(lenet, x):
    raw = _bytes(torch.save, lenet.state_dict(), _use_new_zipfile_serialization=False)
    assert _same(load_upload(raw, "old.pt").model, lenet, x)


def test_torchscript_of_a_zoo_model_becomes_prunable_eager(lenet, x):
    raw = _bytes(torch.jit.save, torch.jit.trace(lenet, x[:1]))
    u = load_upload(raw, "lenet_traced.pt")
    assert (u.kind, u.arch) == ("torchscript", "lenet5-mnist") and prunable(u)
    assert _same(u.model, lenet, x) and not isinstance(u.model, torch.jit.ScriptModule)


def test_torchscript_of_an_unknown_model_runs_but_cannot_be_pruned(lenet, x):
    raw = _bytes(torch.jit.save, torch.jit.trace(Scaled().eval(), x[:1]))
    u = load_upload(raw, "custom.pt")
    assert u.kind == "torchscript" and u.arch is None and u.input_shape is None and not prunable(u)
    assert _same(u.model, lenet, x)
    assert any("cannot be pruned" in n for n in u.notes)
    with pytest.raises(ValueError, match="no (prunable )?Conv2d/Linear (layer|module)"):
        apply_recipe(u.model, Recipe(PruneSpec("unstructured", "l1", "global", 0.5)))


def test_export_program_with_dynamic_batch_becomes_prunable_eager(lenet, x):
    ep = torch.export.export(lenet, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    u = load_upload(_bytes(torch.export.save, ep), "lenet.pt2")
    assert (u.kind, u.arch, u.input_shape) == ("torch.export", "lenet5-mnist", (1, 28, 28)) and prunable(u)
    assert _same(u.model, lenet, x)


def test_export_program_of_an_unknown_model_runs_any_batch_and_refuses_pruning(lenet, x):
    ep = torch.export.export(Scaled().eval(), (x[:1],))  # fixed batch of 1
    u = load_upload(_bytes(torch.export.save, ep), "scaled.pt2")
    assert u.kind == "torch.export" and u.arch is None and u.input_shape == (1, 28, 28) and not prunable(u)
    u.model.eval()  # ExportedProgram.module().eval() raises; the wrapper must not
    assert _same(u.model, lenet, x)  # batch of 3 through a batch-1 graph
    assert any("fixed batch of 1" in n for n in u.notes)
    with pytest.raises(ValueError, match="no (prunable )?Conv2d/Linear (layer|module)"):
        apply_recipe(u.model, Recipe(PruneSpec("unstructured", "l1", "global", 0.5)))


def test_quantizing_a_model_with_no_layers_is_refused(x):
    ep = torch.export.export(Scaled().eval(), (x[:1],))
    u = load_upload(_bytes(torch.export.save, ep), "scaled.pt2")
    with pytest.raises(ValueError):
        apply_recipe(u.model, Recipe(quant=QuantSpec(4)))


def test_an_opaque_upload_evaluates_in_the_workbench_like_the_original(lenet, x):
    ep = torch.export.export(Scaled().eval(), (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    u = load_upload(_bytes(torch.export.save, ep), "scaled.pt2")
    wb = Workbench("upload-scaled", model=u.model, spec=upload_spec(u, "upload-scaled", "mnist", 10))
    ref = Workbench("lenet5-mnist", model=lenet).evaluate(Recipe(), MeasureSettings(latency=False))
    r = wb.evaluate(Recipe(), MeasureSettings(latency=False))
    assert r.accuracy == ref.accuracy and r.params_total == ref.params_total


# -- refusals ----------------------------------------------------------------------------------------
def test_empty_truncated_and_oversized_files_are_refused(lenet, tmp_path):
    zipped = _bytes(torch.save, lenet.state_dict())
    legacy = _bytes(torch.save, lenet.state_dict(), _use_new_zipfile_serialization=False)
    cases = [
        (b"", "m.pt", "empty \\(0 bytes\\)"),
        (zipped[: len(zipped) // 2], "m.pt", "truncated or corrupt"),
        (legacy[: len(legacy) // 2], "m.pt", "truncated or corrupt"),
        (st_save(lenet.state_dict())[:5000], "m.safetensors", "not a valid safetensors file"),
    ]
    for raw, name, message in cases:
        with pytest.raises(UploadError, match=message):
            load_upload(raw, name)
    with pytest.raises(UploadError, match="bytes, over the 1,000 bytes upload limit"):
        load_upload(zipped, "m.pt", max_bytes=1000)
    path = tmp_path / "big.pt"
    path.write_bytes(zipped)
    with pytest.raises(UploadError, match="over the 1,000 bytes upload limit"):
        load_upload(path, path.name, max_bytes=1000)


@pytest.mark.parametrize(
    "name, raw",
    [
        ("model.onnx", b"\x08\x07onnx"),
        ("notes.txt", b"hello"),
        ("model", b"hello"),
        ("photo.pt", b"\x89PNG\r\n\x1a\n" + b"0" * 64),
        ("model.pt2", b"not a zip at all"),
        ("w.safetensors", b"PK\x03\x04junk"),
    ],
)
def test_wrong_format_or_extension_is_refused(name, raw):
    with pytest.raises(UploadError, match="not an accepted format"):
        load_upload(raw, name)


def test_pickles_that_would_run_code_are_refused(lenet, marker):
    evil = Evil(str(marker))
    hostile = [
        ("plain-p2.pt", pickle.dumps(evil, protocol=2)),
        ("plain-p4.pt", pickle.dumps(evil, protocol=4)),
        ("in-dict.pt", _bytes(torch.save, {"w": torch.ones(1), "x": evil})),
        ("legacy.pth", _bytes(torch.save, {"x": evil}, _use_new_zipfile_serialization=False)),
        ("whole-module.pt", _bytes(torch.save, lenet)),
        ("weights.pkl", pickle.dumps(evil)),
    ]
    for name, raw in hostile:
        with pytest.raises(UploadError, match="not an accepted format.*Pickled code is refused"):
            load_upload(raw, name)


def test_torchscript_archive_with_a_hostile_pickle_is_refused(lenet, x, marker):
    raw = _bytes(torch.jit.save, torch.jit.trace(lenet, x[:1]))
    bad = _rezip(raw, lambda n, d: pickle.dumps(Evil(str(marker)), protocol=2) if n.endswith("/data.pkl") else d)
    with pytest.raises(UploadError, match="Pickled code is refused"):
        load_upload(bad, "lenet.pt")


def test_torchscript_that_runs_code_while_loading_is_refused(marker):
    raw = _bytes(torch.jit.save, torch.jit.script(SetStateWriter(str(marker))))
    with pytest.raises(UploadError, match="defines __setstate__"):
        load_upload(raw, "setstate.pt")


def test_torchscript_with_file_access_in_forward_is_refused(marker):
    raw = _bytes(torch.jit.save, torch.jit.script(ForwardWriter(str(marker))))
    with pytest.raises(UploadError, match="aten::save"):
        load_upload(raw, "writer.pt")


@pytest.fixture(scope="module")
def pt2(lenet, x) -> bytes:
    ep = torch.export.export(lenet, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))
    return _bytes(torch.export.save, ep)


def _edit_json(raw: bytes, suffix: str, change) -> bytes:
    def edit(name, data):
        if name.endswith(suffix):
            obj = json.loads(data)
            change(obj)
            return json.dumps(obj).encode()
        return data

    return _rezip(raw, edit)


def test_export_archive_with_pickled_payloads_is_refused(pt2, marker):
    evil = _bytes(torch.save, {"x": Evil(str(marker))})
    bad_inputs = _rezip(pt2, lambda n, d: evil if n.endswith("sample_inputs/model.pt") else d)
    with pytest.raises(UploadError, match="Pickled code is refused"):
        load_upload(bad_inputs, "m.pt2")

    def pickled_weight(cfg):
        next(iter(cfg["config"].values()))["use_pickle"] = True

    with pytest.raises(UploadError, match="pickled object"):
        load_upload(_edit_json(pt2, "model_weights_config.json", pickled_weight), "m.pt2")
    legacy = _add_entry(pt2, "archive/serialized_state_dict.pt", evil)  # torch.export's old format
    with pytest.raises(UploadError, match="entries a torch.export.save program does not"):
        load_upload(legacy, "m.pt2")


def _add_entry(raw: bytes, name: str, data: bytes) -> bytes:
    out = io.BytesIO(raw)
    with zipfile.ZipFile(out, "a") as zf:
        zf.writestr(name, data)
    return out.getvalue()


def _replace_first(obj, key: str, value) -> bool:
    if isinstance(obj, dict):
        if key in obj and isinstance(obj[key], str):
            obj[key] = value
            return True
        return any(_replace_first(v, key, value) for v in obj.values())
    if isinstance(obj, list):
        return any(_replace_first(v, key, value) for v in obj)
    return False


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("target", "torch.os.system", "calls 'torch.os.system'"),
        ("target", "torch.ops.aten.save.default", "calls 'torch.ops.aten.save.default'"),
        ("expr_str", "__import__('os').system('touch {marker}')", "shape expression"),
    ],
)
def test_export_program_with_hostile_graph_is_refused(pt2, key, value, message, marker):
    # torch.export.load itself would run the expression (sympify -> eval): checked by hand in torch 2.14.1
    def change(program):
        assert _replace_first(program, key, value.format(marker=marker))

    with pytest.raises(UploadError, match=message):
        load_upload(_edit_json(pt2, "models/model.json", change), "m.pt2")


def test_export_program_with_guard_code_is_refused(pt2, marker):
    def change(program):  # ExportedProgram.module() would exec this as a guard
        program["guards_code"] = [f"__import__('os').system('touch {marker}')"]

    with pytest.raises(UploadError, match="guard code"):
        load_upload(_edit_json(pt2, "models/model.json", change), "m.pt2")


def test_zip_bomb_is_refused():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", b"\x80\x02}q\x00.")
        zf.writestr("archive/data/0", bytes(50 * 2**20))
    assert len(out.getvalue()) < 2**20
    with pytest.raises(UploadError, match="zip bomb"):
        load_upload(out.getvalue(), "bomb.pt")


def test_state_dict_with_wrong_shapes_or_keys_names_the_mismatches(lenet):
    state = dict(lenet.state_dict())
    state["conv1.weight"] = torch.zeros(8, 1, 5, 5)
    with pytest.raises(UploadError, match=r"conv1.weight is \(8, 1, 5, 5\) in the file but \(6, 1, 5, 5\)"):
        load_upload(st_save(state), "m.safetensors", arch="lenet5-mnist")
    state = {k: v for k, v in lenet.state_dict().items() if not k.startswith("fc3")} | {"head.weight": torch.ones(1)}
    with pytest.raises(UploadError, match="2 missing: fc3.weight, fc3.bias; 1 unexpected: head.weight"):
        load_upload(st_save(state), "m.safetensors", arch="lenet5-mnist")
    with pytest.raises(UploadError, match="matches no architecture PruneScope knows; closest is lenet5-mnist"):
        load_upload(st_save(state), "m.safetensors")
    with pytest.raises(UploadError, match="unknown architecture 'vgg99'"):
        load_upload(st_save(lenet.state_dict()), "m.safetensors", arch="vgg99")


def test_non_tensor_entries_are_refused(lenet):
    raw = _bytes(torch.save, {**lenet.state_dict(), "lr": 0.1})
    with pytest.raises(UploadError, match="entry 'lr' is a float, not a tensor"):
        load_upload(raw, "m.pt")


@pytest.mark.parametrize("bad, count", [(float("nan"), "3 NaN and 0 Inf"), (float("inf"), "0 NaN and 3 Inf")])
def test_non_finite_weights_are_refused_with_the_tensor_name(lenet, x, bad, count):
    state = {k: v.clone() for k, v in lenet.state_dict().items()}
    state["fc2.weight"].view(-1)[:3] = bad
    with pytest.raises(UploadError, match=f"tensor 'fc2.weight' holds {count}"):
        load_upload(st_save(state), "m.safetensors")
    model = load("lenet5-mnist")
    model.load_state_dict(state)
    with pytest.raises(UploadError, match="'fc2.weight' holds"):
        load_upload(_bytes(torch.jit.save, torch.jit.trace(model, x[:1])), "m.pt")


def test_corrupted_files_load_or_raise_upload_error_never_anything_else(lenet, x, pt2):
    import random

    rng = random.Random(0)
    files = {
        "m.safetensors": st_save(lenet.state_dict()),
        "m.pt": _bytes(torch.save, lenet.state_dict()),
        "ts.pt": _bytes(torch.jit.save, torch.jit.trace(lenet, x[:1])),
        "m.pt2": pt2,
        "old.pt": _bytes(torch.save, lenet.state_dict(), _use_new_zipfile_serialization=False),
    }
    for name, raw in files.items():
        for _ in range(8):
            data = bytearray(raw)
            if rng.random() < 0.5:
                data = data[: rng.randrange(1, len(data))]
            else:
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            try:
                u = load_upload(bytes(data), name)
            except UploadError:
                continue
            with torch.no_grad():
                assert u.model(x).shape == (3, 10)  # what loads, runs
