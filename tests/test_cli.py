"""The ``sknn`` command line: train/predict on tiny data, and its one-line errors."""

import io
import subprocess
import sys

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPClassifierTorch
from sknn._persistence import dump, load
from sknn.cli import main
from sknn.datasets import load_image

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore::sklearn.exceptions.ConvergenceWarning")


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """`sknn train` on the default data (digits), 3 epochs; its outputs."""
    folder = tmp_path_factory.mktemp("train")
    out, plot = folder / "model.joblib", folder / "curves.png"
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdout", stdout)
        mp.setattr(sys, "stderr", stderr)
        status = main(["train", "--epochs", "3", "--hidden", "32", "--out", str(out),
                       "--plot", str(plot), "--seed", "1"])
    return status, out, plot, stdout.getvalue(), stderr.getvalue()


def test_train_default_reports_saves_and_plots(digits_model):
    status, out, plot, stdout, stderr = digits_model
    assert status == 0
    assert "precision" in stdout and "recall" in stdout and "f1-score" in stdout
    assert "sklearn digits: 1797 samples, 64 features, 10 classes" in stdout
    assert "3/3" in stderr  # the per-epoch progress bar reached the last epoch
    assert "loss=" in stderr and "accuracy=" in stderr
    model = joblib.load(out)
    assert isinstance(model, Pipeline)
    assert isinstance(model[0], StandardScaler)
    assert isinstance(model[-1], MLPClassifierTorch)
    assert model[-1].hidden_layer_sizes == (32,) and model[-1].n_iter_ == 3
    # the printed accuracy is the pipeline's score on the same held-out split
    X, y = load_digits(return_X_y=True)
    _, X_test, _, y_test = train_test_split(X / 16.0, y, test_size=0.25,
                                            random_state=1, stratify=y)
    printed = float(stdout.split("Accuracy:")[1].split()[0])
    assert printed == pytest.approx(model.score(X_test, y_test), abs=1e-4)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # nothing but the model and the plot: no temporary file left behind
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "curves.png", "model.joblib"]


def test_predict_images_and_csv_match_the_pipeline(digits_model, tmp_path, capsys):
    _, out, _, _, _ = digits_model
    model = joblib.load(out)
    X, _ = load_digits(return_X_y=True)
    paths = []
    for i in range(4):
        path = tmp_path / f"digit{i}.png"
        Image.fromarray(np.round(X[i].reshape(8, 8) * 255 / 16).astype(np.uint8)
                        ).save(path)
        paths.append(path)
    assert main(["predict", "--model", str(out), *map(str, paths)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    for path, line in zip(paths, lines):
        name, label, prob = line.split("\t")
        row = load_image(path, size=(8, 8), grayscale=True).reshape(1, -1)
        proba = model.predict_proba(row)[0]
        assert name == str(path)
        assert label == str(model.predict(row)[0])
        assert float(prob) == pytest.approx(proba.max(), abs=1e-4)

    csv = tmp_path / "pixels.csv"
    pd.DataFrame(X[:6]).to_csv(csv, index=False)
    preds = tmp_path / "preds.csv"
    assert main(["predict", "--model", str(out), str(csv), "--output",
                 str(preds)]) == 0
    result = pd.read_csv(preds)
    np.testing.assert_array_equal(result["prediction"], model.predict(X[:6] / 16))
    np.testing.assert_allclose(result["probability"],
                               model.predict_proba(X[:6] / 16).max(axis=1),
                               rtol=1e-5)


def _table(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["answer"] = y
    return frame


def test_train_and_predict_csv_with_string_labels(tmp_path, capsys):
    data = tmp_path / "data.csv"
    _table().to_csv(data, index=False)
    out = tmp_path / "m.joblib"
    assert main(["train", "--data", str(data), "--target", "answer", "--epochs",
                 "2", "--out", str(out), "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "no" in stdout and "yes" in stdout and "support" in stdout
    model = joblib.load(out)
    assert list(model.classes_) == ["no", "yes"]
    new = _table(5, seed=1)
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", "--model", str(out), str(tmp_path / "new.csv")]) == 0
    printed = pd.read_csv(io.StringIO(capsys.readouterr().out))
    np.testing.assert_array_equal(printed["prediction"],
                                  model.predict(new[["a", "b", "c"]].to_numpy()))
    # an image cannot be predicted by a model trained on columns
    img = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(img)
    assert main(["predict", "--model", str(out), str(img)]) == 2
    assert "trained on CSV columns" in _one_error_line(capsys)


def test_train_csv_without_the_label_column(tmp_path, capsys):
    data = tmp_path / "data.csv"
    _table().to_csv(data, index=False)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "m")]) == 2
    line = _one_error_line(capsys)
    assert "no column 'label'" in line and "'answer'" in line and "--target" in line
    assert not (tmp_path / "m").exists()


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_train_on_an_idx_folder(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.repeat([3, 7], 20)
    X = rng.integers(0, 50, size=(40, 28, 28))
    X[y == 7, :14] += 200  # a learnable difference
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", X)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", y)
    out = tmp_path / "m.joblib"
    assert main(["train", "--data", str(tmp_path), "--epochs", "2", "--hidden",
                 "8", "--out", str(out), "--no-progress"]) == 0
    stdout = capsys.readouterr().out
    assert "MNIST" in stdout and "40 samples, 784 features, 2 classes" in stdout
    assert joblib.load(out)[-1].n_features_in_ == 784


def test_train_and_predict_an_image_folder(tmp_path, capsys):
    root = tmp_path / "images"
    for name, colour in {"red": (250, 0, 0), "blue": (0, 0, 250)}.items():
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.new("RGB", (9, 7), tuple(max(c - 10 * i, 0) for c in colour)
                      ).save(root / name / f"{i}.png")
    out = tmp_path / "m.joblib"
    assert main(["train", "--data", str(root), "--image-size", "6,6", "--epochs",
                 "2", "--out", str(out), "--no-progress"]) == 0
    assert "12 samples, 108 features, 2 classes" in capsys.readouterr().out
    assert main(["predict", "--model", str(out), str(root / "red")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [
        str(root / "red" / f"{i}.png") for i in range(6)]
    assert {line.split("\t")[1] for line in lines} <= {"red", "blue"}


@pytest.mark.parametrize("argv, message", [
    (["train", "--data", "{tmp}/missing.csv"], "no such file or folder"),
    (["train", "--data", "{tmp}/model.h5"], "unsupported format '.h5'"),
    (["train", "--data", "{tmp}/bad.npz"], "not a readable .npz"),
    (["train", "--conv", "8,8"], "--conv applies to --model cnn only"),
    (["predict", "--model", "{tmp}/missing.joblib", "{tmp}/model.h5"],
     "unsupported input format"),
    (["predict", "--model", "{tmp}/missing.joblib", "{tmp}/bad.npz"],
     "unsupported input format"),
    (["predict", "--model", "{tmp}/model.h5", "{tmp}/x.png"],
     "is not a saved sknn model"),
    (["predict", "--model", "{tmp}/missing.joblib", "{tmp}/x.png"],
     "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "model.h5").write_text("not a model")
    (tmp_path / "bad.npz").write_text("not a zip")
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png")
    argv = [a.format(tmp=tmp_path) for a in argv]
    assert main(argv + ["--out", str(tmp_path / "o")] if argv[0] == "train"
                else argv) == 2
    assert message in _one_error_line(capsys)


def test_usage_errors_return_argparse_status(capsys):
    assert main(["train", "--hidden", "a,b"]) == 2
    assert "positive integers" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


def test_python_m_sknn_bad_path_has_no_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sknn", "train", "--data", str(tmp_path / "nope")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"sknn train: error: --data '{tmp_path / 'nope'}': no such file or folder"]


def test_train_cnn_when_available(tmp_path, capsys):
    pytest.importorskip("sknn", reason="sknn")
    import sknn

    if not hasattr(sknn, "CNNClassifier"):
        pytest.skip("sknn.CNNClassifier is not there yet")
    out = tmp_path / "cnn.joblib"
    assert main(["train", "--model", "cnn", "--conv", "4", "--hidden", "8",
                 "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    assert "support" in capsys.readouterr().out
    clf = joblib.load(out)[-1]
    assert type(clf).__name__ == "CNNClassifier"
    assert tuple(clf.conv_filters) == (4,)


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
