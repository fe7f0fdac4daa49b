"""The ``sknn`` command line: a self-contained saved Pipeline that agrees with
``sknn predict``, warnings about unlike images, the tutorial flags, and bad
input as one stderr line with exit status 2 (checked in subprocesses)."""

import io
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch
from sknn._persistence import dump, load
from sknn.preprocessing import PixelScaler

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def _digits_by_default():
    """`sknn train` without --data reads SKNN_MNIST, as load_digits_or_mnist
    does: these tests want the digits."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SKNN_MNIST", raising=False)
        yield


def _sknn(argv, cwd, **kwargs):
    """``python -m sknn ARGV`` in a fresh process."""
    return subprocess.run([sys.executable, "-m", "sknn", *map(str, argv)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, **kwargs)


def _digit_png(path, image, invert=False):
    """A digits image (values 0..16) as an 8-bit grayscale PNG."""
    pixels = np.round(image * 255 / 16).astype(np.uint8)
    Image.fromarray(255 - pixels if invert else pixels).save(path)
    return pixels


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory, run_main):
    """`sknn train` on the default data (digits), 3 epochs; its outputs."""
    folder = tmp_path_factory.mktemp("train")
    out, plot = folder / "model.joblib", folder / "curves.png"
    status, stdout, stderr = run_main(
        ["train", "--epochs", 3, "--hidden", 32, "--lr", 0.01, "--out", out,
         "--plot", plot, "--seed", 1])
    return status, out, plot, stdout, stderr


def test_train_default_reports_saves_and_plots(digits_model, digits_bunch):
    status, out, plot, stdout, stderr = digits_model
    assert status == 0, stderr
    assert "precision" in stdout and "recall" in stdout and "f1-score" in stdout
    assert "scikit-learn digits: 1797 8x8 grayscale images, 10 classes" in stdout
    assert "Trained 3 epochs" in stdout
    model = joblib.load(out)
    assert [name for name, _ in model.steps] == ["pixels", "scaler", "clf"]
    assert isinstance(model["pixels"], PixelScaler)
    assert model["pixels"].max_value == 16.0
    assert model["pixels"].image_shape_ == (8, 8, 1)
    assert isinstance(model["scaler"], StandardScaler)
    assert isinstance(model["clf"], MLPClassifierTorch)
    assert model["clf"].hidden_layer_sizes == (32,) and model["clf"].n_iter_ == 3
    # the progress is the estimator's own bar
    assert model["clf"].progress_bar is True
    # the printed accuracy is the Pipeline's score on the same held-out split,
    # fed the raw images as load_digits returns them
    _, X_test, _, y_test = train_test_split(
        digits_bunch.images, digits_bunch.target, test_size=0.25, random_state=1,
        stratify=digits_bunch.target)
    printed = float(stdout.split("Accuracy:")[1].split()[0])
    assert printed == pytest.approx(model.score(X_test, y_test), abs=1e-4)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # nothing but the model and the plot: no temporary file left behind
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "curves.png", "model.joblib"]


def test_saved_model_is_self_contained(digits_model, digits_bunch):
    _, out, _, _, _ = digits_model
    model = joblib.load(out)
    # no attributes of the CLI's own on the sklearn objects
    fresh = Pipeline([("pixels", PixelScaler()), ("scaler", StandardScaler()),
                      ("clf", MLPClassifierTorch())])
    assert set(vars(model)) == set(vars(fresh))
    assert not hasattr(model, "sknn_input_")
    # raw images, flat raw rows: the same answers, and right most of the time
    by_images = model.predict(digits_bunch.images)
    np.testing.assert_array_equal(by_images, model.predict(digits_bunch.data))
    assert np.mean(by_images == digits_bunch.target) > 0.7


def test_predict_agrees_with_the_python_path(digits_model, digits_bunch, tmp_path,
                                             run_main):
    _, out, _, _, _ = digits_model
    model = joblib.load(out)
    paths, raw = [], []
    for i in range(4):
        path = tmp_path / f"digit{i}.png"
        pixels = _digit_png(path, digits_bunch.images[i])
        paths.append(path)
        # what the PNG holds, on the digits' 0..16 scale
        raw.append(pixels.astype(np.float32) / np.float32(255.0) * np.float32(16))
    status, stdout, stderr = run_main(["predict", "--model", out, *paths])
    assert status == 0 and stderr == ""
    lines = stdout.strip().splitlines()
    proba = model.predict_proba(np.stack(raw))
    assert len(lines) == 4
    for path, line, row in zip(paths, lines, proba):
        name, label, prob = line.split("\t")
        assert name == str(path)
        assert label == str(model.classes_[row.argmax()])
        assert float(prob) == pytest.approx(row.max(), abs=1e-4)

    # CSV rows of raw pixels, as load_digits' data: the Pipeline's predictions
    csv = tmp_path / "pixels.csv"
    pd.DataFrame(digits_bunch.data[:6]).to_csv(csv, index=False)
    preds = tmp_path / "preds.csv"
    status, _, stderr = run_main(["predict", "--model", out, csv, "--output", preds])
    assert status == 0, stderr
    result = pd.read_csv(preds)
    np.testing.assert_array_equal(result["prediction"],
                                  model.predict(digits_bunch.data[:6]))
    np.testing.assert_allclose(result["probability"],
                               model.predict_proba(digits_bunch.data[:6]).max(axis=1),
                               rtol=1e-5)


def test_output_is_written_for_images(digits_model, digits_bunch, tmp_path, run_main):
    _, out, _, _, _ = digits_model
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"d{i}.png")
        _digit_png(paths[-1], digits_bunch.images[i])
    csv = tmp_path / "out" / "predictions.csv"
    csv.parent.mkdir()
    status, stdout, _ = run_main(["predict", "--model", out, *paths, "--output",
                                   csv])
    assert status == 0 and "Wrote 3 predictions" in stdout
    table = pd.read_csv(csv)
    assert list(table.columns) == ["path", "prediction", "probability"]
    assert list(table["path"]) == [str(p) for p in paths]
    assert sorted(p.name for p in csv.parent.iterdir()) == ["predictions.csv"]


def test_dark_on_light_digit_warns_what_the_model_expects(digits_model, digits_bunch,
                                                          tmp_path, run_main):
    _, out, _, _, _ = digits_model
    # a black-on-white 7, 200x200, as a user draws one
    seven = tmp_path / "seven.png"
    pixels = np.round(digits_bunch.images[7] * 255 / 16).astype(np.uint8)
    big = Image.new("L", (200, 200), 255)
    big.paste(Image.fromarray(255 - pixels).resize((160, 160)), (20, 20))
    big.save(seven)
    status, stdout, stderr = run_main(["predict", "--model", out, seven])
    assert status == 0 and stdout.startswith(str(seven))
    line, size = stderr.strip().splitlines()
    assert line.startswith(f"sknn predict: warning: {seven}: ")
    assert "trained on 8x8 light-on-dark" in line
    assert "this image is dark-on-light" in line and "--invert" in line
    assert size == (f"sknn predict: warning: {seven}: the model was trained on "
                    "8x8 images; this image is 200x200, shrunk to 8x8, which "
                    "loses detail")
    # inverted, only the size differs from what the model expects
    status, stdout, stderr = run_main(["predict", "--model", out, "--invert", seven])
    assert status == 0 and stderr.strip() == size
    # and a light-on-dark digit of the right kind never warns
    plain = tmp_path / "plain.png"
    _digit_png(plain, digits_bunch.images[7])
    assert run_main(["predict", "--model", out, plain])[2] == ""


def _table(n=80, seed=0, text=False):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    if text:
        frame["colour"] = rng.choice(["red", "green", "blue"], size=n)
        X[:, 0] += np.where(frame["colour"] == "red", 3, 0)
    frame["answer"] = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    return frame


def test_train_and_predict_csv_with_string_labels(tmp_path, run_main):
    data = tmp_path / "data.csv"
    _table().to_csv(data, index=False)
    out = tmp_path / "m.joblib"
    status, stdout, stderr = run_main(
        ["train", "--data", data, "--target", "answer", "--epochs", 2, "--out",
         out, "--no-progress"])
    assert status == 0, stderr
    assert "no" in stdout and "yes" in stdout and "support" in stdout
    model = joblib.load(out)
    assert [name for name, _ in model.steps] == ["scaler", "clf"]
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    assert list(model.classes_) == ["no", "yes"]
    new = _table(5, seed=1)
    new.to_csv(tmp_path / "new.csv", index=False)
    status, stdout, _ = run_main(["predict", "--model", out, tmp_path / "new.csv"])
    printed = pd.read_csv(io.StringIO(stdout))
    np.testing.assert_array_equal(printed["prediction"],
                                  model.predict(new[["a", "b", "c"]]))


def test_text_feature_columns_are_one_hot_encoded(tmp_path, run_main):
    data = tmp_path / "data.csv"
    _table(120, text=True).to_csv(data, index=False)
    out = tmp_path / "m.joblib"
    status, stdout, stderr = run_main(
        ["train", "--data", data, "--target", "answer", "--epochs", 2, "--out",
         out, "--no-progress"])
    assert status == 0, stderr
    assert "one-hot encoding the text columns 'colour' (3 values)" in stdout
    model = joblib.load(out)
    assert isinstance(model[0], ColumnTransformer)
    assert list(model.feature_names_in_) == ["a", "b", "c", "colour"]
    new = _table(6, seed=3, text=True)
    new.loc[0, "colour"] = "purple"
    new.drop(columns=["answer"]).to_csv(tmp_path / "new.csv", index=False)
    status, stdout, stderr = run_main(["predict", "--model", out,
                                        tmp_path / "new.csv"])
    assert status == 0
    printed = pd.read_csv(io.StringIO(stdout))
    np.testing.assert_array_equal(printed["prediction"],
                                  model.predict(new.drop(columns=["answer"])))
    (line,) = stderr.strip().splitlines()
    assert "column 'colour' has values the model never saw: ['purple']" in line


def test_headerless_csv_keeps_its_first_row(tmp_path, run_main):
    data = tmp_path / "data.csv"
    _table(40).to_csv(data, index=False, header=False)
    out = tmp_path / "m.joblib"
    status, stdout, stderr = run_main(
        ["train", "--data", data, "--target", -1, "--epochs", 1, "--out", out,
         "--no-progress", "--test-size", 0.25])
    assert status == 0, stderr
    assert "40 rows, 3 feature columns" in stdout
    assert "no header row detected" in stdout
    # predicting the same layout without the label column
    rows = tmp_path / "rows.csv"
    _table(5, seed=2).drop(columns=["answer"]).to_csv(rows, index=False,
                                                      header=False)
    status, stdout, _ = run_main(["predict", "--model", out, rows])
    assert status == 0 and len(pd.read_csv(io.StringIO(stdout))) == 5
    # --header makes the first line names: one row fewer
    status, stdout, _ = run_main(
        ["train", "--data", data, "--header", "--target", -1, "--epochs", 1,
         "--out", out, "--no-progress"])
    assert status == 0 and "39 rows" in stdout


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_train_on_an_idx_folder_takes_uint8_images(tmp_path, run_main):
    rng = np.random.default_rng(0)
    y = np.repeat([3, 7], 20)
    X = rng.integers(0, 50, size=(40, 28, 28))
    X[y == 7, :14] += 200  # a learnable difference
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", X)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", y)
    out = tmp_path / "m.joblib"
    status, stdout, _ = run_main(["train", "--data", tmp_path, "--epochs", 2,
                                   "--hidden", 8, "--out", out, "--no-progress"])
    assert status == 0
    assert "MNIST" in stdout and "40 28x28 grayscale images, 2 classes" in stdout
    model = joblib.load(out)
    assert model["pixels"].max_value == 255.0
    assert model["pixels"].image_shape_ == (28, 28, 1)
    from sknn.datasets import load_mnist

    (_, _), (images, _) = load_mnist(tmp_path)
    # load_mnist's uint8 images go in as they are: the /255 is the first step
    np.testing.assert_array_equal(
        model.predict_proba(images),
        model[1:].predict_proba(images.reshape(40, -1) / np.float32(255)))


def test_train_and_predict_an_image_folder(tmp_path, run_main):
    root = tmp_path / "images"
    for name, colour in {"red": (250, 0, 0), "blue": (0, 0, 250)}.items():
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (9, 7), tuple(max(c - 10 * i, 0) for c in colour)
                      ).save(root / name / f"{i}.png")
    out = tmp_path / "m.joblib"
    status, stdout, _ = run_main(["train", "--data", root, "--image-size", "6,6",
                                   "--epochs", 2, "--out", out, "--no-progress"])
    assert status == 0 and "12 6x6 colour images, 2 classes" in stdout
    model = joblib.load(out)
    assert model["pixels"].max_value == 1.0
    status, stdout, _ = run_main(["predict", "--model", out, root / "red"])
    lines = stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [
        str(root / "red" / f"{i}.png") for i in range(6)]
    from sknn.datasets import load_image_folder

    X, y = load_image_folder(root, size=(6, 6))
    expected = dict(zip(map(str, sorted((root / "red").iterdir())),
                        model.predict(X[y == "red"])))
    assert {line.split("\t")[0]: line.split("\t")[1] for line in lines} == expected


def test_tutorial_flags_reach_the_estimator(tmp_path, run_main):
    out = tmp_path / "m.joblib"
    status, stdout, stderr = run_main(
        ["train", "--epochs", 2, "--hidden", "64,32", "--dropout", 0.5, "--alpha",
         0.64, "--weight-init", "truncated_normal", "--solver", "sgd",
         "--momentum", 0, "--lr", 0.01, "--batch-size", 32, "--activation", "tanh",
         "--validation-fraction", 0.2, "--out", out, "--no-progress"])
    assert status == 0, stderr
    clf = joblib.load(out)["clf"]
    params = clf.get_params()
    assert {k: params[k] for k in ("dropout", "alpha", "weight_init", "solver",
                                   "momentum", "activation", "batch_size",
                                   "validation_fraction", "early_stopping",
                                   "learning_rate_init")} == {
        "dropout": 0.5, "alpha": 0.64, "weight_init": "truncated_normal",
        "solver": "sgd", "momentum": 0.0, "activation": "tanh", "batch_size": 32,
        "validation_fraction": 0.2, "early_stopping": True,
        "learning_rate_init": 0.01}
    # validation as Keras' validation_split: reported every epoch, no early stop
    assert clf.n_iter_ == 2 and "val_accuracy" in clf.history_[-1]


def test_early_stop_is_reported_with_its_reason(tmp_path, run_main):
    status, stdout, _ = run_main(
        ["train", "--epochs", 200, "--hidden", 16, "--early-stopping",
         "--patience", 1, "--lr", 0.05, "--out", tmp_path / "m.joblib",
         "--no-progress"])
    assert status == 0
    summary = next(line for line in stdout.splitlines()
                   if line.startswith("Trained"))
    assert "stopped early: Validation score did not improve" in summary


def test_progress_bar_labels_its_figures_and_says_why_it_stopped(tmp_path, run_main):
    status, _, stderr = run_main(
        ["train", "--epochs", 200, "--hidden", 16, "--early-stopping",
         "--patience", 1, "--lr", 0.05, "--out", tmp_path / "m.joblib"])
    assert status == 0
    for label in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert f"{label}=" in stderr, label
    assert "acc=" not in stderr  # no unlabelled figure
    stopped = [line for line in stderr.splitlines()
               if line.startswith("Stopped early at epoch")]
    assert len(stopped) == 1 and "of 200" in stopped[0]
    assert "did not improve" in stopped[0]


def test_option_names_are_the_estimators(run_main):
    """--activation and --weight-init offer sknn._options' names, which the
    estimators' constraints and torch factories use (test_modules checks)."""
    from sknn import _options
    from sknn._modules import ACTIVATIONS as activations
    from sknn._modules import WEIGHT_INITS as weight_inits

    help_text = run_main(["train", "--help"])[1]
    for name in (*activations, *weight_inits):
        assert name in help_text
    assert set(_options.ACTIVATIONS) == set(activations)
    assert set(_options.WEIGHT_INITS) == set(weight_inits)


def test_train_cnn(tmp_path, run_main):
    out = tmp_path / "cnn.joblib"
    status, stdout, _ = run_main(["train", "--model", "cnn", "--conv", 4,
                                   "--hidden", 8, "--epochs", 1, "--out", out,
                                   "--no-progress"])
    assert status == 0 and "support" in stdout
    model = joblib.load(out)
    assert type(model["clf"]).__name__ == "CNNClassifier"
    assert tuple(model["clf"].conv_filters) == (4,)
    assert tuple(model["clf"].input_shape) == (8, 8, 1)
    digits = load_digits()
    np.testing.assert_array_equal(model.predict(digits.images[:20]),
                                  model.predict(digits.data[:20]))


# --------------------------------------------------- .sknn and ONNX files
def test_export_and_predict_with_sknn_and_onnx_files(digits_model, digits_bunch,
                                                     tmp_path, run_main):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("safetensors")
    _, out, _, _, _ = digits_model
    status, stdout, stderr = run_main(["export", "--model", out, "--onnx",
                                        tmp_path / "m.onnx", "--sknn",
                                        tmp_path / "m.sknn"])
    assert status == 0, stderr
    assert "input 'X' (rows of 64 values)" in stdout
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"d{i}.png")
        _digit_png(paths[-1], digits_bunch.images[i])
    answers = {}
    for name in ("model.joblib", "m.sknn", "m.onnx"):
        model = out if name == "model.joblib" else tmp_path / name
        status, stdout, stderr = run_main(["predict", "--model", model, *paths])
        assert status == 0 and stderr == "", (name, stderr)
        answers[name] = [line.split("\t") for line in stdout.strip().splitlines()]
    labels = [[row[1] for row in rows] for rows in answers.values()]
    assert labels[0] == labels[1] == labels[2]
    probs = np.array([[float(row[2]) for row in rows] for rows in answers.values()])
    np.testing.assert_allclose(probs[1:], probs[:1].repeat(2, axis=0), atol=2e-4)
    # the ONNX file warns about a dark-on-light digit as the Pipeline does
    inverted = tmp_path / "inverted.png"
    _digit_png(inverted, digits_bunch.images[0], invert=True)
    status, _, stderr = run_main(["predict", "--model", tmp_path / "m.onnx",
                                   inverted])
    assert status == 0 and "this image is dark-on-light" in stderr


def test_train_out_sknn_saves_the_pickle_free_format(tmp_path, digits_bunch, run_main):
    pytest.importorskip("safetensors")
    import sknn

    out = tmp_path / "m.sknn"
    status, stdout, stderr = run_main(["train", "--epochs", 2, "--hidden", 16,
                                        "--out", out, "--no-progress"])
    assert status == 0, stderr
    assert f"Saved the fitted Pipeline to {out}" in stdout
    model = sknn.load(out)
    assert isinstance(model["pixels"], PixelScaler)
    assert model["pixels"].image_shape_ == (8, 8, 1)
    assert model.predict(digits_bunch.images[:50]).shape == (50,)


def test_table_model_as_onnx_reads_csv_columns(tmp_path, run_main):
    pytest.importorskip("onnxruntime")
    data = tmp_path / "data.csv"
    _table().to_csv(data, index=False)
    out, onnx = tmp_path / "m.joblib", tmp_path / "m.onnx"
    assert run_main(["train", "--data", data, "--target", "answer", "--epochs",
                      2, "--out", out, "--no-progress"])[0] == 0
    assert run_main(["export", "--model", out, "--onnx", onnx])[0] == 0
    new = tmp_path / "new.csv"
    _table(7, seed=4)[["c", "b", "a"]].to_csv(new, index=False)  # other order
    by_joblib = run_main(["predict", "--model", out, new])[1]
    by_onnx = run_main(["predict", "--model", onnx, new])[1]
    assert list(pd.read_csv(io.StringIO(by_joblib))["prediction"]) == list(
        pd.read_csv(io.StringIO(by_onnx))["prediction"])


def test_onnx_from_python_is_read_by_predict_as_the_joblib_model(
        digits_model, digits_bunch, tmp_path, run_main):
    """sknn.to_onnx in Python writes the same artifact as sknn export: its
    metadata lets sknn predict read images, with the joblib model's answers."""
    pytest.importorskip("onnxruntime")
    import sknn
    from sknn._onnx import METADATA_KEY

    _, out, _, _, _ = digits_model
    model = joblib.load(out)
    python_onnx = tmp_path / "python.onnx"
    python_onnx.write_bytes(sknn.to_onnx(model).SerializeToString())
    status, _, stderr = run_main(["export", "--model", out, "--onnx",
                                   tmp_path / "cli.onnx"])
    assert status == 0, stderr
    import onnx

    python_model, cli_model = (onnx.load(path)
                               for path in (python_onnx, tmp_path / "cli.onnx"))
    metadata = [{p.key: p.value for p in m.metadata_props}
                for m in (python_model, cli_model)]
    assert METADATA_KEY in metadata[0] and metadata[0] == metadata[1]
    assert python_model.graph == cli_model.graph
    assert sorted((o.domain, o.version) for o in python_model.opset_import) == \
        sorted((o.domain, o.version) for o in cli_model.opset_import)
    paths = [tmp_path / f"d{i}.png" for i in range(6)]
    for path, image in zip(paths, digits_bunch.images[10:16]):
        _digit_png(path, image)
    answers = {}
    for name, model_path in (("joblib", out), ("onnx", python_onnx)):
        status, stdout, stderr = run_main(["predict", "--model", model_path, *paths])
        assert status == 0 and stderr == "", stderr
        answers[name] = [line.split("\t") for line in stdout.strip().splitlines()]
    assert [r[1] for r in answers["onnx"]] == [r[1] for r in answers["joblib"]]
    np.testing.assert_allclose([float(r[2]) for r in answers["onnx"]],
                               [float(r[2]) for r in answers["joblib"]], atol=2e-4)


def test_a_large_digit_warns_that_it_is_resized(digits_model, digits_bunch, tmp_path,
                                                run_main):
    """An 8x8-digits model given a 28x28 PNG says so (README: "says on stderr
    when an image differs clearly from the training images (size, ...)"); an
    image of about the training size does not warn."""
    _, out, _, _, _ = digits_model
    pixels = np.round(digits_bunch.images[3] * 255 / 16).astype(np.uint8)
    mnist_like = tmp_path / "mnist_like.png"
    Image.fromarray(pixels).resize((28, 28), Image.NEAREST).save(mnist_like)
    status, stdout, stderr = run_main(["predict", "--model", out, mnist_like])
    assert status == 0 and stdout.startswith(str(mnist_like))
    assert stderr.strip() == (
        f"sknn predict: warning: {mnist_like}: the model was trained on 8x8 "
        "images; this image is 28x28, shrunk to 8x8, which loses detail")
    near = tmp_path / "near.png"
    Image.fromarray(pixels).resize((10, 10), Image.NEAREST).save(near)
    assert run_main(["predict", "--model", out, near])[2] == ""
    small = tmp_path / "small.png"
    Image.fromarray(pixels).resize((4, 4)).save(small)
    assert "this image is 4x4, enlarged to 8x8, which blurs it" in run_main(
        ["predict", "--model", out, small])[2]
    wide = tmp_path / "wide.png"
    Image.fromarray(pixels).resize((24, 8), Image.NEAREST).save(wide)
    assert "stretched to 8x8" in run_main(["predict", "--model", out, wide])[2]


def test_ctrl_c_in_a_caller_is_known_from_the_signal(tmp_path, monkeypatch, run_main):
    """main() called from Python: Ctrl-C during the fit (which the estimator
    catches, keeping the model) ends in status 130 and saves nothing, known
    from the command's own SIGINT handler, not from a warning's text."""
    import threading
    import warnings

    # the estimator's own words for an interruption no longer matter
    real_warn = warnings.warn

    def reworded(message, *args, **kwargs):
        if "interrupted" in str(message).lower():
            message = "stopped early at the user's request"
        return real_warn(message, *args, **kwargs)

    monkeypatch.setattr(warnings, "warn", reworded)
    default = signal.getsignal(signal.SIGINT)

    def press_ctrl_c():
        deadline = time.monotonic() + 60
        # once the command's handler is installed, training is under way
        while signal.getsignal(signal.SIGINT) is default:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    out = tmp_path / "m.joblib"
    status, _, stderr = run_main(["train", "--epochs", 100000, "--patience",
                                   100000, "--hidden", 16, "--no-progress",
                                   "--out", out])
    presser.join()
    assert status == 130, stderr
    assert "sknn train: interrupted" in stderr and "nothing was saved" in stderr
    assert not out.exists()
    assert signal.getsignal(signal.SIGINT) is default


def test_default_data_is_load_digits_or_mnist(tmp_path, monkeypatch, run_main):
    """Without --data, sknn train reads what datasets.load_digits_or_mnist
    gives: MNIST (28x28 uint8, max 255) where SKNN_MNIST names a copy."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)
    y = np.arange(60) % 3
    np.savez(tmp_path / "mnist.npz", x_train=x[:40], y_train=y[:40],
             x_test=x[40:], y_test=y[40:])
    monkeypatch.setenv("SKNN_MNIST", str(tmp_path / "mnist.npz"))
    out = tmp_path / "m.joblib"
    status, stdout, stderr = run_main(["train", "--epochs", 1, "--hidden", 4,
                                        "--no-progress", "--out", out])
    assert status == 0, stderr
    assert f"Data: MNIST ({tmp_path / 'mnist.npz'}): 60 28x28 grayscale" in stdout
    pixels = joblib.load(out)["pixels"]
    assert pixels.image_shape_ == (28, 28, 1) and pixels.max_value == 255.0
    monkeypatch.setenv("SKNN_MNIST", str(tmp_path / "gone.npz"))
    status, _, stderr = run_main(["train", "--out", out])
    assert status == 2 and "SKNN_MNIST environment variable" in stderr


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch, run_main):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    status, _, stderr = run_main(["train", "--plot", tmp_path / "c.png", "--out",
                                   tmp_path / "m.joblib"])
    assert status == 2 and not (tmp_path / "m.joblib").exists()
    assert stderr.strip() == (
        "sknn train: error: --plot needs the optional package 'matplotlib', "
        "which is not installed. Install it with: pip install 'sknn[plot]'")


def _bad_onnx_metadata(folder, model_path):
    """ONNX files of the digits model with hostile sknn metadata: name ->
    (file, what the error names)."""
    onnx = pytest.importorskip("onnx")
    import json

    import sknn
    from sknn._onnx import METADATA_KEY

    good = sknn.to_onnx(joblib.load(model_path))
    spec = json.loads({p.key: p.value for p in good.metadata_props}[METADATA_KEY])
    scaler = spec["pixel_scaler"]
    cases = {
        "not json": ("{", "not JSON"),
        "deep": ("[" * 100000 + "]" * 100000, "not JSON"),
        "a list": ("[1, 2]", "must be a JSON object"),
        "kind": (dict(spec, kind="audio"), "kind must be one of"),
        "width": (dict(spec, n_features=65), "n_features is 65, but the graph"),
        "huge image": (dict(spec, image_shape=[4096, 4096, 1]),
                       "holds 16777216 values, but the graph takes rows of 64"),
        "shape type": (dict(spec, image_shape="8x8"), "image_shape must be"),
        "negative side": (dict(spec, image_shape=[-8, -8, 1]),
                          "image_shape must be an integer"),
        "nan scale": (dict(spec, max_value=float("nan")), "max_value must be a "
                      "finite positive number"),
        "text scale": (dict(spec, max_value="16"), "max_value must be a finite"),
        "zero scale": (dict(spec, max_value=0), "max_value must be a finite "
                       "positive"),
        "extra attribute": (dict(spec, pixel_scaler=dict(scaler, __class__="x")),
                            "pixel_scaler must hold exactly the keys"),
        "scaler range": (dict(spec, pixel_scaler=dict(scaler, value_range_=[1])),
                         "pixel_scaler.value_range_ must be [low, high]"),
        "scaler mean": (dict(spec, pixel_scaler=dict(scaler, mean_=float("inf"))),
                        "pixel_scaler.mean_ must be a finite number"),
        "scaler background": (dict(spec, pixel_scaler=dict(scaler,
                                                           background_=7)),
                              "pixel_scaler.background_ must be one of"),
        "scaler width": (dict(spec, pixel_scaler=dict(scaler, n_features_in_=63)),
                         "pixel_scaler.n_features_in_ is 63"),
        "classes": (dict(spec, classes={"a": 1}), "classes must be a list"),
    }
    files = {}
    for name, (value, message) in cases.items():
        bad = onnx.ModelProto()
        bad.CopyFrom(good)
        del bad.metadata_props[:]
        entry = bad.metadata_props.add()
        entry.key = METADATA_KEY
        entry.value = value if isinstance(value, str) else json.dumps(value)
        path = folder / f"{name.replace(' ', '_')}.onnx"
        path.write_bytes(bad.SerializeToString())
        files[name] = (path, message)
    return files


def test_hostile_onnx_metadata_is_one_documented_error(digits_model, digits_bunch,
                                                       tmp_path, run_main):
    """Every sknn metadata key that reaches the image scaler or sizes an image
    is checked: one line, exit 2, 'invalid sknn metadata', never an internal
    error."""
    pytest.importorskip("onnxruntime")
    png = tmp_path / "d.png"
    _digit_png(png, digits_bunch.images[0])
    for name, (path, message) in _bad_onnx_metadata(tmp_path,
                                                    digits_model[1]).items():
        status, stdout, stderr = run_main(["predict", "--model", path, png])
        assert status == 2, (name, stderr)
        (line,) = stderr.strip().splitlines()
        assert line.startswith(f"sknn predict: error: {str(path)!r}: invalid sknn "
                               "metadata (sknn.input_spec): "), (name, line)
        assert message in line, (name, line)
        assert stdout == ""


# ---------------------------------------------- bad input, in fresh processes
@pytest.fixture(scope="module")
def bad_input_dir(tmp_path_factory, digits_model, run_main):
    folder = tmp_path_factory.mktemp("bad")
    (folder / "model.h5").write_text("not a model")
    (folder / "bad.npz").write_text("not a zip")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    Image.new("RGB", (4, 4)).save(folder / "x.png")
    _table().to_csv(folder / "table.csv", index=False)
    frame = _table()
    frame.loc[[1, 4], "answer"] = np.nan
    frame.to_csv(folder / "no_label.csv", index=False)
    frame = _table()
    frame["name"] = [f"person {i}" for i in range(len(frame))]
    frame.to_csv(folder / "names.csv", index=False)
    frame = _table()
    frame.loc[3, "b"] = np.nan
    frame.to_csv(folder / "gaps.csv", index=False)
    _table().to_csv(folder / "headerless.csv", index=False, header=False)
    _table().drop(columns=["c"]).to_csv(folder / "short.csv", index=False)
    _table(text=True).to_csv(folder / "text.csv", index=False)
    (folder / "junk.onnx").write_bytes(b"not a protobuf")
    (folder / "notes.csv").write_text("# comment\n1,2,3\n")  # pickle: KeyError 35
    (folder / "empty.joblib").write_bytes(b"")
    dump(joblib.load(digits_model[1]), folder / "digits.joblib")
    status, _, _ = run_main(["train", "--data", folder / "table.csv", "--target",
                              "answer", "--epochs", 1, "--out",
                              folder / "table.joblib", "--no-progress"])
    assert status == 0
    status, _, _ = run_main(["train", "--data", folder / "text.csv", "--target",
                              "answer", "--epochs", 1, "--out",
                              folder / "text.joblib", "--no-progress"])
    assert status == 0
    return folder


BAD_INPUT = {
    "missing data": (["train", "--data", "missing.csv"], "no such file or folder"),
    "unknown format": (["train", "--data", "model.h5"], "unsupported format '.h5'"),
    "bad npz": (["train", "--data", "bad.npz"], "not a readable .npz"),
    "conv for mlp": (["train", "--conv", "8,8"], "--conv applies to --model cnn"),
    "momentum for adam": (["train", "--momentum", "0"], "apply to --solver sgd"),
    "missing label column": (["train", "--data", "table.csv"],
                             "no label column 'label'"),
    "missing labels": (["train", "--data", "no_label.csv", "--target", "answer"],
                       "'answer' is empty on lines 3, 6"),
    "identifier column": (["train", "--data", "names.csv", "--target", "answer"],
                          "text columns ['name'] have a different value"),
    "missing values": (["train", "--data", "gaps.csv", "--target", "answer"],
                       "missing values in the numeric columns ['b']"),
    "headerless": (["train", "--data", "headerless.csv"], "no header row"),
    "out folder": (["train", "--out", "nowhere/m.joblib"], "does not exist"),
    "out onnx": (["train", "--out", "m.onnx"], "sknn export"),
    "usage": (["train", "--dropout", "1.5"], "expected a fraction in [0, 1)"),
    "model missing": (["predict", "--model", "missing.joblib", "x.png"],
                      "does not exist"),
    "model junk": (["predict", "--model", "model.h5", "x.png"],
                   "is not a saved sknn model"),
    "input format": (["predict", "--model", "digits.joblib", "model.h5"],
                     "unsupported input format"),
    "unreadable image": (["predict", "--model", "digits.joblib", "broken.png"],
                         "Cannot read the image file"),
    "image to table model": (["predict", "--model", "table.joblib", "x.png"],
                             "trained on CSV columns"),
    "columns missing": (["predict", "--model", "table.joblib", "short.csv"],
                        "lacks the feature columns ['c']"),
    "pixels missing": (["predict", "--model", "digits.joblib", "short.csv"],
                       "expects 64 pixel columns"),
    "export nothing": (["export", "--model", "digits.joblib"],
                       "give --onnx PATH and/or --sknn PATH"),
    "export suffix": (["export", "--model", "digits.joblib", "--onnx", "m.txt"],
                      "writes .onnx files"),
    "sknn with text": (["train", "--data", "text.csv", "--target", "answer",
                        "--out", "m.sknn"], "cannot hold the one-hot encoder"),
    "onnx junk": (["predict", "--model", "junk.onnx", "x.png"],
                  "is not a readable ONNX model"),
    "sknn missing": (["predict", "--model", "missing.sknn", "x.png"],
                     "does not exist"),
    "model is a commented text": (["predict", "--model", "notes.csv", "x.png"],
                                  "is not a saved sknn model: it is a text file "
                                  "(a CSV file?)"),
    "model is a CSV": (["export", "--model", "table.csv", "--sknn", "m.sknn"],
                       "is not a saved sknn model: it is a text file"),
    "model is an image": (["predict", "--model", "x.png", "x.png"],
                          "is not a saved sknn model: it is a PNG image"),
    "model is empty": (["predict", "--model", "empty.joblib", "x.png"],
                       "is not a saved sknn model: it is empty"),
    "model is a folder": (["predict", "--model", ".", "x.png"], "is a folder"),
    "onnx of text columns": (["export", "--model", "text.joblib", "--onnx",
                              "m.onnx"],
                             "--onnx: this model one-hot encodes the text columns "
                             "['colour']"),
    "sknn of text columns": (["export", "--model", "text.joblib", "--sknn",
                              "m.sknn"], "neither ONNX nor the .sknn format"),
}


#: one case per kind of bad input the issue names, also run as a real command
SUBPROCESS_CASES = ["missing labels", "identifier column", "headerless",
                    "unreadable image", "model junk", "usage",
                    "model is a commented text", "onnx of text columns"]


@pytest.fixture(scope="module")
def bad_input_runs(bad_input_dir):
    """The SUBPROCESS_CASES, each in its own process, two at a time."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_sknn, BAD_INPUT[name][0], bad_input_dir)
                   for name in SUBPROCESS_CASES}
        return {name: f.result() for name, f in futures.items()}


def _check_one_error_line(status, stderr, case, folder):
    lines = stderr.strip().splitlines()
    assert status == 2, stderr
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith(("sknn train: error: ", "sknn predict: error: ",
                                "sknn export: error: "))
    assert BAD_INPUT[case][1] in lines[0]
    # nothing was saved by a failed run
    assert not (folder / "m.onnx").exists()
    assert not (folder / "m.sknn").exists()
    assert not (folder / "model.joblib").exists()


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(case, bad_input_dir, monkeypatch, run_main):
    monkeypatch.chdir(bad_input_dir)
    status, _, stderr = run_main(BAD_INPUT[case][0])
    _check_one_error_line(status, stderr, case, bad_input_dir)


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_input_as_a_command(case, bad_input_runs, bad_input_dir):
    proc = bad_input_runs[case]
    _check_one_error_line(proc.returncode, proc.stderr, case, bad_input_dir)


def test_ctrl_c_saves_nothing(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "sknn", "train", "--epochs", "100000", "--patience",
         "100000", "--hidden", "64", "--no-progress", "--out", "m.joblib"],
        cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # wait until training has begun
            if line.startswith("Model:"):
                break
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("sknn train: interrupted") and "nothing was saved" in line
    assert list(tmp_path.iterdir()) == []


def test_help_does_not_import_torch():
    code = ("import sys; from sknn.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=120,
                          env=dict(os.environ, COLUMNS="80"))
    assert proc.stdout.strip().splitlines()[-1] == "False"


def test_a_closed_pipe_neither_loses_the_model_nor_prints_a_traceback(tmp_path):
    """``sknn train | head -1`` still saves the model; ``sknn predict ... |
    head -1`` stops quietly."""
    Image.new("L", (8, 8)).save(tmp_path / "a.png")
    for i in range(60):
        Image.new("L", (8, 8), i).save(tmp_path / f"p{i:02d}.png")
    script = (f"{sys.executable} -m sknn train --epochs 2 --hidden 8 --no-progress "
              "--out m.joblib | head -1; echo train=${PIPESTATUS[0]}; "
              f"{sys.executable} -m sknn predict --model m.joblib . | head -1; "
              "echo predict=${PIPESTATUS[0]}")
    proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert "train=0" in proc.stdout and (tmp_path / "m.joblib").is_file()
    assert "predict=0" in proc.stdout or "predict=141" in proc.stdout
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr


def test_usage_errors_and_help(run_main):
    status, _, stderr = run_main(["train", "--hidden", "a,b"])
    assert status == 2 and "positive integers" in stderr
    assert len(stderr.strip().splitlines()) == 1
    status, stdout, _ = run_main(["--help"])
    assert status == 0 and "{train,predict,export}" in stdout


# ---------------------------------------------------------------- persistence
class _Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def test_dump_is_atomic(tmp_path):
    path = tmp_path / "model.joblib"
    dump({"a": 1}, path)
    with pytest.raises(TypeError, match="cannot pickle"):
        dump(_Unpicklable(), path)
    assert load(path) == {"a": 1}  # the earlier model is intact
    assert [p.name for p in tmp_path.iterdir()] == ["model.joblib"]
    with pytest.raises(TypeError):
        dump(_Unpicklable(), tmp_path / "new.joblib")
    assert [p.name for p in tmp_path.iterdir()] == ["model.joblib"]


def test_dump_and_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        dump({}, tmp_path / "no" / "model.joblib")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load(tmp_path / "missing.joblib")
    (tmp_path / "junk").write_bytes(b"\x00junk")
    with pytest.raises(ValueError, match="not a saved sknn model"):
        load(tmp_path / "junk")


def test_predict_with_a_python_pipeline_fitted_on_flat_rows(digits_bunch, tmp_path,
                                                            run_main):
    """A Pipeline made in Python from flat rows still predicts image files
    (square images are assumed) and says so when it cannot."""
    from sknn import MLPClassifierTorch as MLP

    model = Pipeline([("pixels", PixelScaler(16.0)), ("clf", MLP(
        hidden_layer_sizes=(16,), max_iter=2, random_state=0, device="cpu"))])
    model.fit(digits_bunch.data[:200], digits_bunch.target[:200])
    dump(model, tmp_path / "flat.joblib")
    png = tmp_path / "d.png"
    _digit_png(png, digits_bunch.images[0])
    status, stdout, _ = run_main(["predict", "--model", tmp_path / "flat.joblib",
                                   png])
    assert status == 0 and stdout.startswith(str(png))
    model = Pipeline([("pixels", PixelScaler(16.0)), ("clf", MLP(
        hidden_layer_sizes=(16,), max_iter=2, random_state=0, device="cpu"))])
    model.fit(digits_bunch.data[:200, :60], digits_bunch.target[:200])
    dump(model, tmp_path / "odd.joblib")
    status, _, stderr = run_main(["predict", "--model", tmp_path / "odd.joblib",
                                   png])
    assert status == 2 and "image size is unknown" in stderr


@pytest.mark.parametrize("target", ["device", "not_a_folder"])
def test_unwritable_out_is_refused_before_training(tmp_path, target, monkeypatch,
                                                   run_main):
    # a device (through a link, so that a broken check can only replace the
    # link) or a path under a regular file: one line, exit 2, and no fit ran
    if target == "device":
        out = tmp_path / "model.joblib"
        out.symlink_to(os.devnull)
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "model.joblib"
    from sknn import _mlp

    fits = []
    monkeypatch.setattr(_mlp.MLPClassifierTorch, "fit",
                        lambda self, *a, **k: fits.append(1) or self)
    status, stdout, stderr = run_main(["train", "--out", out, "--epochs", "1"])
    assert status == 2, stderr
    assert fits == [] and "accuracy" not in stdout
    assert len(stderr.strip().splitlines()) == 1 and str(out) in stderr
    assert os.path.exists(os.devnull) and stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_predict_output_to_a_fifo_is_written_directly(digits_model, digits_bunch,
                                                      tmp_path, run_main):
    _, out, _, _, _ = digits_model
    csv = tmp_path / "rows.csv"
    pd.DataFrame(digits_bunch.data[:3]).to_csv(csv, index=False)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    status, _, stderr = run_main(["predict", "--model", out, csv, "--output", fifo])
    reader.join(timeout=30)
    assert status == 0, stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert len(received[0].strip().splitlines()) == 4  # header + 3 rows
