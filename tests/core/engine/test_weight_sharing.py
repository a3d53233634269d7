"""k-means weight sharing (Deep Compression): codebooks, their exact round trip through the artefact
(bit-packed or Huffman-coded indices), and codebook fine-tuning."""

import json
import zlib

import numpy as np
import pytest
import torch

from compress_core import models
from compress_core.base.recipe import FinetuneSpec, PruneSpec, QuantSpec, Recipe
from compress_core.base.records import Compressed
from compress_core.data import sets as data
from compress_core.engine import measure
from compress_core.engine.finetune import CODEBOOK_SHARE, codebook_spec, finetune_codebooks_
from compress_core.engine.quantize import QTensor, describe, kmeans_tensor, quantize_tensor, quantize_weights_
from compress_core.engine.stages import apply_recipe
from compress_core.files import artifact
from compress_core.files.artifact import ArtifactError, artifact_bytes, load_artifact
from compress_core.files.artifact.codec import encode_codebook
from compress_core.files.artifact.entropy import MAX_LEN, huffman_decode, huffman_encode, huffman_lengths


@pytest.fixture
def weight():
    w = torch.randn(16, 8, 3, 3, generator=torch.Generator().manual_seed(0))
    w[w.abs() < 0.6] = 0.0  # about half pruned
    return w


def _lenet_kmeans(bits=3, granularity="per_tensor", sparsity=0.9):
    prune = PruneSpec("unstructured", "l1", "global", sparsity, skip=())
    recipe = Recipe(prune, QuantSpec(bits, "kmeans", granularity))
    return apply_recipe(models.load("lenet5-mnist"), recipe)


# -- the codebook -------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("per_channel", [False, True])
def test_codebook_has_at_most_2_to_the_bits_values_and_zeros_stay_zero(weight, bits, per_channel):
    q = quantize_tensor(weight, bits, "kmeans", per_channel)
    deq = q.dequantize()
    assert q.codebook.shape == ((16, 2**bits) if per_channel else (2**bits,))
    rows = deq.reshape(16, -1) if per_channel else deq.reshape(1, -1)
    masks = (weight != 0).reshape(rows.shape)
    for row, keep in zip(rows, masks, strict=True):
        assert row[keep].unique().numel() <= 2**bits
    assert torch.all(deq[weight == 0] == 0) and torch.all(q.codes[weight == 0] == -1)
    assert torch.all(q.codes[weight != 0] >= 0) and int(q.codes.max()) < 2**bits
    assert torch.equal(q.codebook.half().float(), q.codebook), "centroids are fp16-exact (what the file stores)"


@pytest.mark.parametrize("per_channel", [False, True])
def test_kmeans_is_deterministic_and_uses_no_random_state(weight, per_channel):
    a = kmeans_tensor(weight, 4, per_channel)
    torch.manual_seed(123)
    b = kmeans_tensor(weight.clone(), 4, per_channel)
    assert torch.equal(a.codes, b.codes) and torch.equal(a.codebook, b.codebook)


@pytest.mark.parametrize("per_channel", [False, True])
def test_dequantize_is_codebook_indexed_by_codes(weight, per_channel):
    q = kmeans_tensor(weight, 3, per_channel)
    rows = q.codebook.reshape(-1, 8)
    codes = q.codes.reshape(rows.shape[0], -1)
    want = torch.stack([torch.where(c >= 0, r[c.clamp(min=0).long()], 0.0) for r, c in zip(rows, codes, strict=True)])
    assert torch.equal(q.dequantize(), want.reshape(weight.shape))


def test_lloyd_converged_every_weight_on_its_nearest_centroid_near_its_clusters_mean(weight):
    q = kmeans_tensor(weight, 3, per_channel=False)
    nz = weight != 0
    w, codes, cb = weight[nz].double(), q.codes[nz].long(), q.codebook.double()
    dist = (w[:, None] - cb[None, :]).abs()
    assert torch.all(dist.gather(1, codes[:, None]).squeeze(1) <= dist.min(1).values + 1e-12)
    for k in codes.unique():
        mean = w[codes == k].mean()
        assert abs(float(cb[k] - mean)) <= 1e-3 * max(1.0, abs(float(mean)))  # fp16 rounding only


def test_linear_initialisation_spans_the_range_and_beats_uniform_levels(weight):
    q = kmeans_tensor(weight, 4)
    nz = weight != 0
    kmeans_err = (q.dequantize() - weight)[nz].pow(2).mean()
    uniform_err = (quantize_tensor(weight, 4, "asymmetric", per_channel=False).dequantize() - weight)[nz].pow(2).mean()
    assert kmeans_err < uniform_err
    assert float(q.codebook.min()) < 0 < float(q.codebook.max())


def test_quantize_weights_records_codebooks_and_describe_says_what_is_simulated():
    model = models.load("lenet5-mnist")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    spec = QuantSpec(bits=2, scheme="kmeans", granularity="per_tensor")
    codes = quantize_weights_(layers, spec)
    for name, module in layers:
        assert torch.equal(module.weight, codes[name].dequantize()) and module.weight.unique().numel() <= 5
        assert torch.equal(module.bias, module.bias.half().float())
    text = describe(spec)
    assert "k-means weight sharing" in text and "4 shared values per layer" in text and "simulated" in text
    assert "per output channel" in describe(QuantSpec(bits=2, scheme="kmeans"))


def test_existing_schemes_have_no_codebook(weight):
    for scheme in ("symmetric", "asymmetric"):
        for bits in (1, 4):
            assert quantize_tensor(weight, bits, scheme).codebook is None


# -- Huffman coding -------------------------------------------------------------------------------
@pytest.mark.parametrize("k, count", [(2, 1), (8, 1000), (16, 5000), (256, 3000)])
def test_huffman_round_trips(k, count):
    rng = np.random.default_rng(k)
    symbols = np.minimum(rng.geometric(0.3, count) - 1, k - 1).astype(np.uint8)
    lengths = huffman_lengths(np.bincount(symbols, minlength=k))
    stream = huffman_encode(symbols, lengths)
    assert np.array_equal(huffman_decode(stream, lengths, count, "t"), symbols)


def test_huffman_lengths_are_limited_and_prefix_free():
    fib = np.array([1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765, 10946])
    lengths = huffman_lengths(fib)
    assert lengths.max() <= MAX_LEN and sum(2.0 ** -int(n) for n in lengths) <= 1.0
    assert list(huffman_lengths(np.array([0, 5, 0]))) == [0, 1, 0]


def test_corrupted_huffman_streams_are_refused():
    symbols = np.array([0, 1, 2, 3, 0, 0, 0, 1], np.uint8)
    lengths = huffman_lengths(np.bincount(symbols, minlength=4))
    stream = huffman_encode(symbols, lengths)
    with pytest.raises(ArtifactError, match="Kraft"):
        huffman_decode(stream, np.array([1, 1, 1, 0], np.uint8), len(symbols), "t")
    with pytest.raises(ArtifactError):
        huffman_decode(stream + b"\0", lengths, len(symbols), "t")  # trailing byte
    with pytest.raises(ArtifactError):
        huffman_decode(stream[:-1], lengths, len(symbols), "t")  # truncated


# -- the artefact -------------------------------------------------------------------------------
def _bits_of(model):
    return {k: v.view(torch.int32) if v.dtype == torch.float32 else v for k, v in model.state_dict().items()}


@pytest.mark.parametrize("granularity", ["per_tensor", "per_channel"])
@pytest.mark.parametrize("entropy", [True, False])
@pytest.mark.parametrize("bits", [1, 3, 4])
def test_codebook_artefact_round_trip_is_exact(granularity, entropy, bits):
    comp = _lenet_kmeans(bits, granularity)
    data = artifact_bytes(comp, "lenet5-mnist", entropy=entropy)
    loaded = load_artifact(data)
    want, got = _bits_of(comp.float_model), _bits_of(loaded.float_model)
    assert list(got) == list(want) and all(torch.equal(got[k], want[k]) for k in want), "bit-for-bit weights"
    assert set(loaded.qcodes) == set(comp.qcodes)
    for name, q in comp.qcodes.items():
        assert torch.equal(loaded.qcodes[name].codes, q.codes)
        assert torch.equal(loaded.qcodes[name].codebook.view(torch.int32), q.codebook.view(torch.int32))
    assert artifact_bytes(loaded.to_compressed(), "lenet5-mnist", entropy=entropy) == data
    header = artifact.read_header(data)
    stores = {r["name"]: r for r in header["tensors"]}
    assert all(stores[f"{n}.weight"]["store"] == "codebook" for n in comp.qcodes)
    assert all(stores[f"{n}.weight"]["q"]["codebook"] == "float16" for n in comp.qcodes)
    assert all(stores[f"{n}.bias"]["store"] == "float16" for n in comp.qcodes), "k-means biases are fp16"
    codings = {stores[f"{n}.weight"]["q"]["coding"] for n in comp.qcodes}
    assert codings == {"packed"} if not entropy else codings <= {"packed", "huffman"}
    with torch.no_grad():
        x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(2))
        assert torch.equal(loaded.model(x), comp.model(x))


def test_dense_layers_with_fp32_codebooks_round_trip():
    """No zeros (dense layout) and a codebook that is not fp16-exact: stored as fp32."""
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(3))
    q = kmeans_tensor(w, 2)
    q = QTensor(q.codes, q.scale, q.zero_point, 2, None, q.codebook + 1e-5)
    chunks = []
    rec = encode_codebook("w", q.dequantize(), q, chunks)
    assert rec["layout"] == "dense" and rec["q"]["codebook"] == "float32"
    rd = artifact.decoding.Reader(memoryview(b"".join(chunks)))
    value, got = artifact.decoding.decode(rd, rec, "w")
    assert torch.equal(value, q.dequantize()) and torch.equal(got.codebook, q.codebook)


def test_codes_that_do_not_describe_the_weight_are_stored_as_floats():
    comp = _lenet_kmeans(3)
    with torch.no_grad():
        comp.float_model.fc1.weight[0, 0] += 1.0  # no longer on the codebook
    header = artifact.read_header(artifact_bytes(comp, "lenet5-mnist"))
    fc1 = next(r for r in header["tensors"] if r["name"] == "fc1.weight")
    assert fc1["store"] == "float32"
    loaded = load_artifact(artifact_bytes(comp, "lenet5-mnist"))
    assert torch.equal(loaded.float_model.fc1.weight, comp.float_model.fc1.weight)


def _record_size(q, entropy):
    """(record, deflated bytes of its chunks): what the encoder compares."""
    chunks = []
    rec = encode_codebook("w", q.dequantize(), q, chunks, entropy)
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    return rec, len(comp.compress(b"".join(chunks)) + comp.flush())


def _qtensor(codes, bits):
    cb = torch.linspace(-1, 1, 2**bits).half().float()
    return QTensor(
        torch.as_tensor(codes, dtype=torch.int32), torch.ones(()), torch.zeros((), dtype=torch.int32), bits, None, cb
    )


def test_entropy_coding_is_chosen_only_when_smaller():
    rng = np.random.default_rng(0)
    skewed = np.minimum(rng.geometric(0.5, 20_000) - 1, 7)  # 3-bit indices: 0 half the time, 1 a quarter, ...
    rec, coded = _record_size(_qtensor(skewed, 3), True)
    _, packed = _record_size(_qtensor(skewed, 3), False)
    assert rec["q"]["coding"] == "huffman" and coded < 0.9 * packed  # ~2 bits a symbol against deflate's 2.3
    uniform = rng.integers(0, 16, 20_000)  # 4 bits of entropy: Huffman cannot win
    rec, coded = _record_size(_qtensor(uniform, 4), True)
    _, packed = _record_size(_qtensor(uniform, 4), False)
    assert rec["q"]["coding"] == "packed" and coded == packed


def test_entropy_coding_shrinks_a_skewed_model_file():
    comp = _lenet_kmeans(3)
    rng = np.random.default_rng(1)
    for q in comp.qcodes.values():  # make each layer's index distribution skewed, then put weights on it
        nz = q.codes >= 0
        q.codes[nz] = torch.from_numpy(np.minimum(rng.geometric(0.45, int(nz.sum())) - 1, 7).astype(np.int32))
    for name, q in comp.qcodes.items():
        with torch.no_grad():
            comp.float_model.get_submodule(name).weight.copy_(q.dequantize())
    coded, packed = artifact_bytes(comp, "lenet5-mnist"), artifact_bytes(comp, "lenet5-mnist", entropy=False)
    assert len(coded) < len(packed)
    loaded = load_artifact(coded)
    assert all(torch.equal(loaded.qcodes[n].codes, q.codes) for n, q in comp.qcodes.items())


@pytest.mark.parametrize("bits, sparsity", [(4, 0.0), (2, 0.0), (3, 0.9)])
def test_entropy_coding_never_grows_the_file(bits, sparsity):
    """Where Huffman-coded indices would make the file larger (deflate already shrinks 4-bit nibbles
    well), the writer keeps the all-packed file, byte for byte."""
    comp = _lenet_kmeans(bits, sparsity=sparsity)
    coded, packed = artifact_bytes(comp, "lenet5-mnist"), artifact_bytes(comp, "lenet5-mnist", entropy=False)
    assert len(coded) < len(packed) or coded == packed


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["q"].update(coding="rans"), "bad k-means parameters"),
        (lambda r: r["q"].update(codebook="int8"), "bad k-means parameters"),
        (lambda r: r["q"].update(bits=9), "bad k-means parameters"),
        (lambda r: r["bytes"].update(cb=r["bytes"]["cb"] + 2), "chunk 'cb'"),
    ],
)
def test_malformed_codebook_records_are_refused(edit, message):
    data = artifact_bytes(_lenet_kmeans(3), "lenet5-mnist")
    *_, header_len, _, _, _ = artifact.PREAMBLE.unpack_from(data)
    body = zlib.decompressobj(-15).decompress(data[artifact.PREAMBLE.size :])
    header, tensors = json.loads(body[:header_len]), body[header_len:]
    edit(next(r for r in header["tensors"] if r["name"] == "fc1.weight"))
    with pytest.raises(ArtifactError, match=message):
        load_artifact(artifact.assemble(json.dumps(header).encode(), tensors))


# -- codebook fine-tuning -----------------------------------------------------------------------
def test_codebook_finetuning_keeps_layers_on_their_codebooks_and_recovers_accuracy():
    comp = _lenet_kmeans(1, "per_tensor", sparsity=0.8)  # 2 shared values per layer: badly damaged
    held = data.load("mnist", "heldout")
    before = measure.accuracy(measure.predictions(comp.float_model, held), held.y).accuracy
    codes = {n: q.codes.clone() for n, q in comp.qcodes.items()}
    old = {n: q.codebook.clone() for n, q in comp.qcodes.items()}
    ft = FinetuneSpec(epochs=1, lr=0.01, max_samples=1024)
    rows = finetune_codebooks_(comp.float_model, comp.qcodes, ft, "mnist", comp.masks)
    after = measure.accuracy(measure.predictions(comp.float_model, held), held.y).accuracy
    assert after > before + 0.02, (before, after)
    assert rows[-1]["kind"] == "summary" and rows[-1]["codebook_layers"] == len(codes)
    for name, q in comp.qcodes.items():
        w = comp.float_model.get_submodule(name).weight
        assert torch.equal(q.codes, codes[name]), "assignments never change"
        assert torch.equal(w, q.dequantize()) and w.unique().numel() <= 3, "on the codebook (2 values and 0)"
        assert torch.all(w[codes[name] < 0] == 0) and not torch.equal(q.codebook, old[name])
        assert torch.equal(q.codebook.half().float(), q.codebook)
        bias = comp.float_model.get_submodule(name).bias
        assert torch.equal(bias.half().float(), bias), "biases end fp16-exact, as the file stores them"
    loaded = load_artifact(artifact_bytes(comp, "lenet5-mnist"))
    assert all(torch.equal(loaded.qcodes[n].codebook, q.codebook) for n, q in comp.qcodes.items())


def test_centroid_moves_by_the_mean_of_its_members_updates():
    """One SGD step (no momentum history yet) moves each centroid by -lr * mean of its members' grads."""
    from compress_core.engine.finetune import _Tie

    torch.manual_seed(0)
    layer = torch.nn.Linear(6, 4)
    q = kmeans_tensor(layer.weight, 2)
    tie = _Tie(layer.weight, q, torch.device("cpu"), "mean")
    grad = torch.randn_like(layer.weight)
    with torch.no_grad():
        layer.weight -= 0.1 * grad  # what a plain SGD step does
    tie.step()
    codes = q.codes.reshape(-1).long()
    for k in codes[codes >= 0].unique():
        want = q.codebook[k] - 0.1 * grad.reshape(-1)[codes == k].mean()
        assert torch.allclose(tie.centroids[0, k], want, atol=1e-6)
    assert torch.equal(layer.weight.reshape(-1)[codes >= 0], tie.centroids[0, codes[codes >= 0]])


def test_codebook_finetuning_refuses_codes_of_other_shapes():
    comp = _lenet_kmeans(2)
    q = comp.qcodes["fc1"]
    bad = {"fc1": QTensor(q.codes[:, :10], q.scale, q.zero_point, q.bits, q.axis, q.codebook)}
    with pytest.raises(ValueError, match="do not match"):
        finetune_codebooks_(comp.float_model, bad, FinetuneSpec(epochs=1, max_samples=64), "mnist")


def test_a_compressed_record_without_masks_round_trips():
    model = models.load("lenet300-mnist")
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    qcodes = quantize_weights_(layers, QuantSpec(bits=4, scheme="kmeans", granularity="per_channel"))
    comp = Compressed(model=model, float_model=model, recipe=Recipe(quant=QuantSpec(4, "kmeans")), qcodes=qcodes)
    loaded = load_artifact(artifact_bytes(comp, "lenet300-mnist"))
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.float_model.state_dict().values(), model.state_dict().values(), strict=True)
    )


def test_codebook_spec_is_a_share_of_the_recipes_epochs():
    ft = FinetuneSpec(epochs=30, lr=0.02, distill=True, schedule="agp", max_samples=512)
    cb = codebook_spec(ft)
    assert cb.epochs == pytest.approx(30 * CODEBOOK_SHARE)
    assert (cb.lr, cb.distill, cb.max_samples, cb.seed) == (ft.lr, ft.distill, ft.max_samples, ft.seed)
    with pytest.raises(ValueError, match="share"):
        codebook_spec(ft, 0.0)
