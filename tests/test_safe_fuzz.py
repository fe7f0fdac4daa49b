"""Hostile .sknn files: crafted bombs refused before they cost memory, and a
small seeded fuzzer whose every mutant either loads and predicts or is refused
with the one documented error (sknn.SafeFormatError)."""

import base64
import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sknn
from sknn import CNNClassifier, MLPClassifierTorch, MLPRegressorTorch

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[1]
GIB = 2**30


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    """Small saved models, as bytes: a Pipeline (scaler, PCA, MLP), a CNN and
    a TransformedTargetRegressor (a Pipeline in it, the target log1p'd)."""
    X, y = data
    folder = tmp_path_factory.mktemp("saved")
    pipe = make_pipeline(StandardScaler(), PCA(8), MLPClassifierTorch(
        (6,), max_iter=2, random_state=0, device="cpu")).fit(X, y % 3)
    cnn = CNNClassifier(conv_filters=(2,), dense_layer_sizes=(4,), max_iter=1,
                        random_state=0, device="cpu").fit(X / 16, y % 2)
    target = TransformedTargetRegressor(make_pipeline(
        StandardScaler(), MLPRegressorTorch(hidden_layer_sizes=(4,), max_iter=2,
                                            random_state=0, device="cpu")),
        func=np.log1p, inverse_func=np.expm1).fit(X, y)
    models = {"pipe": pipe, "cnn": cnn, "target": target}
    for name, model in models.items():
        sknn.save(model, folder / f"{name}.sknn")
    return {name: (model, (folder / f"{name}.sknn").read_bytes())
            for name, model in models.items()}


def members(data):
    with zipfile.ZipFile(_io(data)) as archive:
        return (archive.read("sknn.json"), archive.read("arrays.safetensors"))


def _io(data):
    import io

    return io.BytesIO(data)


def build_zip(entries, comment):
    """A zip written by hand, so that headers can lie: entries are (name,
    stored bytes, method, crc, declared uncompressed size)."""
    out, central = b"", b""
    for name, payload, method, crc, size in entries:
        name = name.encode()
        fields = (20, 0, method, 0, 0, crc, len(payload), size, len(name))
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, *fields, 0, 0, 0,
                               0, 0, len(out)) + name
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", *fields, 0) + name + payload
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries),
                      len(central), len(out), len(comment))
    return out + central + end + comment


def signed(text):
    return b"sknn-json-sha256:" + hashlib.sha256(text).hexdigest().encode()


def deflate(data):
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush()


def edit(data, change):
    """The file with its JSON edited (the checksums fixed, as a tamperer does)."""
    text, arrays = members(data)
    document = json.loads(text)
    change(document)
    text = json.dumps(document).encode()
    return build_zip([("sknn.json", text, 0, zlib.crc32(text), len(text)),
                      ("arrays.safetensors", arrays, 0, zlib.crc32(arrays),
                       len(arrays))], signed(text))


def estimator_node(document):
    node = document["model"]
    return node["steps"][-1][1] if "steps" in node else node


#: 3 GiB of zeros, bzip2-compressed: the whole stream is 2,289 bytes
BOMB_3GIB_BZ2 = (
    "QlpoOTFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAA"
    "MIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45A"
    "AMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kO"
    "CeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCX"
    "MUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1G"
    "QqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAA"
    "CCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8B"
    "X45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkm"
    "U1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWp"
    "CoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAw"
    "gE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAA"
    "wAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J"
    "4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcx"
    "QVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZC"
    "oCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAI"
    "IAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFf"
    "jkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZT"
    "WQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakK"
    "gJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCA"
    "TUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADA"
    "AAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni"
    "3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFB"
    "WSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKg"
    "JakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAgg"
    "ADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+O"
    "QADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZ"
    "Dgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqA"
    "lzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBN"
    "RkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAA"
    "AAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLf"
    "AV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZ"
    "JlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAl"
    "qQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAA"
    "MIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45A"
    "AMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kO"
    "CeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCX"
    "MUFZJlNZDgni3wFfjkAAwAAACCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1G"
    "QqAlqQqAlzFBWSZTWQ4J4t8BX45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZDgni3wFfjkAAwAAA"
    "CCAAMIBNRkKgJakKgJcxQVkmU1kOCeLfAV+OQADAAAAIIAAwgE1GQqAlqQqAlzFBWSZTWQ4J4t8B"
    "X45AAMAAAAggADCATUZCoCWpCoCXMUFZJlNZJPFr6gA/aUAIwAAABAAIIAAwzAmqaaUiBtRSIHi7"
    "kinChIaah5AQ"
)


def bzip2_bomb():
    return base64.b64decode(BOMB_3GIB_BZ2)


def crafted(saved):
    """name -> (file bytes, expected message) of hostile files."""
    _, data = saved["pipe"]
    _, cnn = saved["cnn"]
    text, arrays = members(data)
    zeros = deflate(bytes(4 * 2**20))  # 4 MiB of zeros in about 4 KiB
    bomb = bzip2_bomb()
    # 7.5 MiB of JSON (about 7 KiB deflated) that parses into ~300 MiB of lists
    json_bomb = b'{"format": "sknn-safe", "x": [' + b"[]," * (5 * 2**19) + b"[]]}"
    files = {
        "bzip2-bomb-3gib": (build_zip([
            ("sknn.json", deflate(text), 8, zlib.crc32(text), len(text)),
            ("arrays.safetensors", bomb, 12, 0, 3 * GIB)], signed(text)),
            "compression method 12"),
        "deflate-claims-3gib": (build_zip([
            ("sknn.json", text, 0, zlib.crc32(text), len(text)),
            ("arrays.safetensors", zeros, 8, 0, 3 * GIB)], signed(text)),
            "claims to inflate to 3221225472 bytes"),
        "deflate-more-than-declared-tensors": (build_zip([
            ("sknn.json", text, 0, zlib.crc32(text), len(text)),
            ("arrays.safetensors", zeros, 8, zlib.crc32(bytes(4 * 2**20)),
             4 * 2**20)], signed(text)),
            "arrays member claims 4194304 bytes, but the tensors"),
        "deflate-header-says-small": (build_zip([
            ("sknn.json", text, 0, zlib.crc32(text), len(text)),
            ("arrays.safetensors", zeros, 8, zlib.crc32(arrays), len(arrays))],
            signed(text)), "Bad CRC|not a complete zip"),
        "json-of-5m-empty-lists": (build_zip([
            ("sknn.json", deflate(json_bomb), 8, zlib.crc32(json_bomb),
             len(json_bomb)),
            ("arrays.safetensors", arrays, 0, zlib.crc32(arrays), len(arrays))],
            signed(json_bomb)), "lists/objects"),
        "declared-tensor-3gib": (edit(data, lambda d: d["arrays"].__setitem__(
            "huge", ["F32", [3 * GIB // 4]])), "arrays member claims"),
        "hidden-40000x40000": (edit(data, lambda d: estimator_node(d)["params"][
            "hidden_layer_sizes"].__setitem__("__tuple__", [40000, 40000])),
            "declares 2 layers|do not fit the network"),
        "hidden-20000-layers": (edit(data, lambda d: estimator_node(d)["params"][
            "hidden_layer_sizes"].__setitem__("__tuple__", [1] * 20000)),
            "declares 20000 layers"),
        "n-features-1e9": (edit(data, lambda d: estimator_node(d)["attributes"][
            "n_features_in_"].__setitem__("__scalar__", 10**9)
            if isinstance(estimator_node(d)["attributes"]["n_features_in_"], dict)
            else estimator_node(d)["attributes"].__setitem__(
                "n_features_in_", 10**9)), "n_features_in_"),
        "empty-dicts-76kb": (edit(data, lambda d: estimator_node(d)["params"][
            "hidden_layer_sizes"].__setitem__("__tuple__", [{}] * 15000)),
            "hidden_layer_sizes|parameters are invalid|declares"),
        "history-of-empty-dicts": (edit(data, lambda d: estimator_node(d).__setitem__(
            "net_history", [{"epoch": {}}] * 5000 + [[]])), "an epoch record"),
        "string-array-800mib": (edit(data, lambda d: d["model"]["steps"][-1][1][
            "attributes"].__setitem__("classes_", {
                "__strings__": ["a"], "dtype": "<U200000000", "shape": [1]})),
            "string array claims"),
        "cnn-image-1e5-square": (edit(cnn, lambda d: d["model"]["attributes"][
            "input_shape_"].__setitem__("__tuple__", [100000, 100000, 1])),
            "do not fit the network|n_features_in_"),
    }
    return files


def test_crafted_files_are_refused_with_the_documented_error(saved, tmp_path):
    for name, (data, message) in crafted(saved).items():
        path = tmp_path / f"{name}.sknn"
        path.write_bytes(data)
        with pytest.raises(sknn.SafeFormatError, match=message):
            sknn.load(path)
    assert len(crafted(saved)["bzip2-bomb-3gib"][0]) < 5000


MEASURE = textwrap.dedent("""
    import json, resource, sys, tracemalloc
    import sknn

    def peak_rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    sknn.load(sys.argv[1])  # imports and a real load first
    sknn.load(sys.argv[1])
    # the high-water mark after the crafted loads, above the RSS before them:
    # an upper bound of what any of them cost (imports set an earlier mark)
    try:
        base = rss()
    except OSError:
        base = peak_rss()
    report = {"peak_before": peak_rss() - base}
    for path in sys.argv[2:]:
        tracemalloc.start()
        try:
            sknn.load(path)
            outcome = "loaded"
        except sknn.SafeFormatError:
            outcome = "SafeFormatError"
        except BaseException as exc:
            outcome = type(exc).__name__
        report[path] = [outcome, tracemalloc.get_traced_memory()[1]]
        tracemalloc.stop()
    report["rss_growth"] = peak_rss() - base
    print(json.dumps(report))
""")


def test_crafted_files_cost_a_few_mib_at_most(saved, tmp_path):
    """Peak memory of refusing each crafted file: Python/numpy allocations
    (tracemalloc) per file, and the process's peak RSS (which also counts
    torch's allocations) over all of them, in a fresh process."""
    valid = tmp_path / "valid.sknn"
    valid.write_bytes(saved["pipe"][1])
    paths = []
    for name, (data, _) in crafted(saved).items():
        paths.append(tmp_path / f"{name}.sknn")
        paths[-1].write_bytes(data)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", MEASURE, str(valid),
                          *map(str, paths)], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout
    report = json.loads(out.splitlines()[-1])
    growth = report.pop("rss_growth")
    before = report.pop("peak_before")
    print({Path(path).stem: [outcome, round(peak / 2**20, 2)]
           for path, (outcome, peak) in report.items()},
          f"peak RSS above the RSS before: {growth / 2**20:.1f} MiB (the "
          f"mark the imports left: {before / 2**20:.1f} MiB)")
    for path, (outcome, peak) in report.items():
        assert outcome == "SafeFormatError", path
        assert peak < 8 * 2**20, (path, peak)
    # the files took 2.7 to 5.3 GiB: none of these raises the
    # high-water mark the imports and a real load left by more than noise.
    # (The mark itself, taken against the RSS now, is not bounded: on a busy
    # machine the kernel evicts torch's file-backed pages, so the RSS now
    # falls below what the imports once held: 49 MiB alone, 200-620 MiB in a
    # loaded full run.)
    assert growth - before < 16 * 2**20, (growth, before)


# ------------------------------------------------------------------ fuzzing
def byte_flip(rng, data, text, arrays):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    return bytes(data)


def truncate(rng, data, text, arrays):
    return data[:rng.randrange(len(data))]


def splice(rng, data, text, arrays):
    """Bytes of the file copied over another place of it (headers, sizes)."""
    data = bytearray(data)
    n = rng.randint(2, 32)
    src, dst = rng.randrange(len(data) - n), rng.randrange(len(data) - n)
    data[dst:dst + n] = data[src:src + n]
    return bytes(data)


def member_swap(rng, data, text, arrays):
    kind = rng.randrange(4)
    pairs = [("sknn.json", text), ("arrays.safetensors", arrays)]
    if kind == 0:
        pairs = [("sknn.json", arrays), ("arrays.safetensors", text)]
    elif kind == 1:
        pairs = pairs + [("extra.bin", b"x")]
    elif kind == 2:
        pairs = [pairs[0], pairs[0]]
    else:
        pairs = [("sknn.json", text), ("arrays.safetensors", deflate(arrays))]
        return build_zip([(pairs[0][0], text, 0, zlib.crc32(text), len(text)),
                          (pairs[1][0], pairs[1][1], 8, zlib.crc32(arrays),
                           len(arrays))], signed(text))
    return build_zip([(n, d, 0, zlib.crc32(d), len(d)) for n, d in pairs],
                     signed(text))


_VALUES = [None, True, -1, 0, 1, 2**40, 1e308, "x", "cache", "../..", [], {},
           [1] * 5, {"__array__": "nope"}, {"__tuple__": [0]},
           {"__object__": "sklearn.pipeline.Pipeline", "params": {},
            "attributes": {}}, {"__float__": "nan"},
           {"__scalar__": 3, "dtype": "V8"}, {"__dtype__": "<U99999999"},
           {"__strings__": ["a"], "dtype": "<U1", "shape": [2]}]


def json_field(rng, data, text, arrays):
    """One JSON value replaced or removed, the checksums fixed."""
    document = json.loads(text)
    spots = []

    def walk(node):
        items = (node.items() if isinstance(node, dict) else
                 enumerate(node) if isinstance(node, list) else [])
        for key, value in items:
            spots.append((node, key))
            walk(value)

    walk(document)
    node, key = rng.choice(spots)
    if isinstance(node, dict) and rng.random() < 0.2:
        del node[key]
    else:
        node[key] = rng.choice(_VALUES)
    text = json.dumps(document).encode()
    return build_zip([("sknn.json", text, 0, zlib.crc32(text), len(text)),
                      ("arrays.safetensors", arrays, 0, zlib.crc32(arrays),
                       len(arrays))], signed(text))


MUTATIONS = [byte_flip, truncate, splice, member_swap, json_field]


def predictions(model, X):
    """What a loaded model gives: probabilities, or a regressor's numbers."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    return model.predict(X)


def test_fuzzed_files_load_and_predict_or_raise_safe_format_error(saved, data,
                                                                 tmp_path):
    """300 seeded mutants. Byte-level mutants cannot fix the checksums: each
    is refused, or (a change in a field the format does not read, such as a
    timestamp) loads and predicts exactly as the original. JSON mutants are
    re-signed, so they are other models: each is refused, or loads and
    predicts (labels among its classes_, probabilities that sum to 1; a
    regressor's numbers, a row for a row)."""
    rng = random.Random(20261206)
    X, _ = data
    outcomes = {}
    for kind, (model, original) in saved.items():
        text, arrays = members(original)
        expected = predictions(model, X[:20] / (16 if kind == "cnn" else 1))
        for i in range(120 if kind != "target" else 60):
            mutate = MUTATIONS[i % len(MUTATIONS)]
            mutant = mutate(rng, original, text, arrays)
            path = tmp_path / f"{kind}-{i}.sknn"
            path.write_bytes(mutant)
            try:
                loaded = sknn.load(path)
            except sknn.SafeFormatError:
                outcome = "SafeFormatError"
            else:
                Xs = X[:20] / (16 if kind == "cnn" else 1)
                got = predictions(loaded, Xs)
                if mutate is not json_field:
                    np.testing.assert_array_equal(got, expected)
                elif kind == "target":
                    assert np.shape(got)[0] == 20, mutate
                else:
                    assert np.isin(loaded.predict(Xs), loaded.classes_).all()
                    np.testing.assert_allclose(got.sum(axis=1), 1, rtol=1e-5)
                outcome = "loaded"
            key = (mutate.__name__, outcome)
            outcomes[key] = outcomes.get(key, 0) + 1
    print(sorted(outcomes.items()))
    refused = sum(n for (_, outcome), n in outcomes.items()
                  if outcome == "SafeFormatError")
    assert sum(outcomes.values()) == 300
    assert refused >= 190  # most mutants are damage, and refused


def test_files_without_the_tensor_list_load_only_with_stored_arrays(saved, data,
                                                                    tmp_path):
    """Files saved before sknn.json listed its tensors: their arrays member
    (stored, as sknn always wrote it) cannot inflate, so they still load."""
    model, original = saved["pipe"]
    older = edit(original, lambda d: d.pop("arrays"))
    path = tmp_path / "older.sknn"
    path.write_bytes(older)
    X, _ = data
    np.testing.assert_array_equal(sknn.load(path).predict_proba(X),
                                  model.predict_proba(X))
    text, arrays = members(older)
    path.write_bytes(build_zip([
        ("sknn.json", text, 0, zlib.crc32(text), len(text)),
        ("arrays.safetensors", deflate(arrays), 8, zlib.crc32(arrays),
         len(arrays))], signed(text)))
    with pytest.raises(sknn.SafeFormatError, match="does not declare their "
                                                   "tensors"):
        sknn.load(path)
