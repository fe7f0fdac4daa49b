"""``sknn train`` / ``predict`` / ``export`` with a numeric target: the task
chosen from the target, the regressor's report and the numbers written."""

import re

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, make_regression
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPRegressorTorch
from sknn.cli.regression import MAX_GUESSED_CLASSES, fold_target_scale
from sknn.datasets import load_csv


def _prices(folder, n=160, seed=0):
    """A CSV of 5 feature columns and a continuous target 'price'."""
    X, y = make_regression(n, 5, noise=5.0, random_state=seed)
    frame = pd.DataFrame(X, columns=list("abcde"))
    frame["price"] = y
    path = folder / "prices.csv"
    frame.to_csv(path, index=False)
    return path, frame


def _scores(stdout):
    return {name: float(value) for name, value in
            re.findall(r"^(R\^2|MAE|RMSE):\s+(\S+)$", stdout, re.MULTILINE)}


@pytest.fixture(scope="module")
def price_model(tmp_path_factory, run_main):
    """`sknn train` on a continuous target: (folder, data frame, model path,
    stdout)."""
    folder = tmp_path_factory.mktemp("prices")
    data, frame = _prices(folder)
    out = folder / "m.joblib"
    status, stdout, stderr = run_main(
        ["train", "--data", data, "--target", "price", "--epochs", 10,
         "--hidden", 16, "--lr", 0.01, "--batch-size", 16, "--out", out,
         "--no-progress", "--seed", 3])
    assert status == 0, stderr
    return folder, frame, out, stdout


def test_continuous_target_trains_a_regressor_and_reports_its_split(price_model):
    folder, frame, out, stdout = price_model
    assert ("continuous target 'price': training a regressor; --task "
            "classification to override") in stdout.splitlines()
    assert "Classification report" not in stdout
    model = joblib.load(out)
    assert [name for name, _ in model.steps] == ["scaler", "reg"]
    assert isinstance(model[-1], MLPRegressorTorch)
    # the scores printed are the saved model's on the same held-out split
    X, y = load_csv(folder / "prices.csv", target="price")
    _, X_test, _, y_test = train_test_split(X, y, test_size=0.25, random_state=3)
    y_pred = model.predict(X_test)
    printed = _scores(stdout)
    assert set(printed) == {"R^2", "MAE", "RMSE"}
    np.testing.assert_allclose(printed["R^2"], r2_score(y_test, y_pred), rtol=1e-5)
    np.testing.assert_allclose(printed["MAE"], mean_absolute_error(y_test, y_pred),
                               rtol=1e-5)
    np.testing.assert_allclose(
        printed["RMSE"], np.sqrt(mean_squared_error(y_test, y_pred)), rtol=1e-5)
    # the model predicts in the target's units (it was trained on the
    # standardized target): clearly better than the mean of the target
    assert printed["R^2"] > 0.5


def test_predict_writes_the_regressors_numbers(price_model, tmp_path, run_main):
    folder, frame, out, _ = price_model
    model = joblib.load(out)
    rows = frame.drop(columns="price").iloc[:7]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    expected = model.predict(rows)
    status, stdout, stderr = run_main(["predict", "--model", out,
                                        tmp_path / "rows.csv"])
    assert status == 0, stderr
    lines = [line.split("\t") for line in stdout.strip().splitlines()]
    assert [int(row) for row, _ in lines] == list(range(7))
    np.testing.assert_array_equal([float(v) for _, v in lines], expected)
    status, _, stderr = run_main(["predict", "--model", out, "--output",
                                   tmp_path / "p.csv", tmp_path / "rows.csv"])
    assert status == 0, stderr
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns) == ["prediction"]
    np.testing.assert_array_equal(written["prediction"], expected)


def test_regressor_exported_to_onnx_and_sknn_predicts_the_same(price_model,
                                                              tmp_path, run_main):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    folder, frame, out, _ = price_model
    rows = frame.drop(columns="price").iloc[:9]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    expected = joblib.load(out).predict(rows)
    onnx, sknn_file = tmp_path / "m.onnx", tmp_path / "m.sknn"
    status, stdout, stderr = run_main(["export", "--model", out, "--onnx", onnx,
                                        "--sknn", sknn_file])
    assert status == 0, stderr
    assert "outputs ['variable']" in stdout
    for model_file, tolerance in ((onnx, 1e-5), (sknn_file, 0)):
        status, _, stderr = run_main(
            ["predict", "--model", model_file, "--output", tmp_path / "p.csv",
             tmp_path / "rows.csv"])
        assert status == 0, stderr
        written = pd.read_csv(tmp_path / "p.csv")["prediction"]
        np.testing.assert_allclose(written, expected, rtol=tolerance,
                                   atol=tolerance * np.abs(expected).max())


def _diabetes(folder):
    frame = load_diabetes(as_frame=True).frame.iloc[:150]
    path = folder / "diabetes.csv"
    frame.to_csv(path, index=False)
    return path


def test_many_whole_numbers_are_ambiguous_until_task_chooses(tmp_path, run_main):
    data = _diabetes(tmp_path)  # its target: whole numbers, ~120 distinct ones
    assert pd.read_csv(data)["target"].nunique() > MAX_GUESSED_CLASSES
    out = tmp_path / "m.joblib"
    status, stdout, stderr = run_main(["train", "--data", data, "--target",
                                        "target", "--out", out, "--no-progress"])
    assert status == 2
    (line,) = stderr.strip().splitlines()
    assert "'target' holds" in line and "distinct whole numbers" in line
    assert "--task classification or --task regression" in line
    assert not out.exists()
    status, stdout, stderr = run_main(
        ["train", "--data", data, "--target", -1, "--task", "regression",
         "--epochs", 2, "--out", out, "--no-progress"])
    assert status == 0, stderr
    assert "target 'target': training a regressor (--task regression)" in stdout
    assert isinstance(joblib.load(out)[-1], MLPRegressorTorch)
    assert set(_scores(stdout)) == {"R^2", "MAE", "RMSE"}


def test_task_classification_overrides_the_guess(tmp_path, run_main):
    # integer labels 0-3 as floats, and a continuous column to regress on
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    frame["level"] = (frame["a"] > 0).astype(float) + (frame["b"] > 0)
    frame.to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "m.joblib"
    status, stdout, stderr = run_main(
        ["train", "--data", tmp_path / "d.csv", "--target", "level", "--epochs", 2,
         "--out", out, "--no-progress"])
    assert status == 0, stderr
    assert "Classification report" in stdout  # a few values: classes
    status, stdout, stderr = run_main(
        ["train", "--data", tmp_path / "d.csv", "--target", "level", "--task",
         "regression", "--epochs", 2, "--out", out, "--no-progress"])
    assert status == 0, stderr
    assert "R^2:" in stdout and "Classification report" not in stdout
    assert isinstance(joblib.load(out)[-1], MLPRegressorTorch)
    status, _, stderr = run_main(
        ["train", "--data", tmp_path / "d.csv", "--target", "a", "--task",
         "classification", "--out", tmp_path / "c.joblib", "--no-progress"])
    assert status == 2
    (line,) = stderr.strip().splitlines()
    assert "continuous numbers, not class labels" in line
    assert not (tmp_path / "c.joblib").exists()


@pytest.mark.parametrize("argv, message", [
    (["--task", "regression"], "images train a classifier"),
    (["--data", "{prices}", "--target", "price", "--model", "cnn"],
     "--model cnn trains a classifier of images"),
])
def test_regression_refusals_are_one_line(argv, message, tmp_path, run_main):
    data, _ = _prices(tmp_path, n=40)
    argv = [str(data) if a == "{prices}" else a for a in argv]
    out = tmp_path / "m.joblib"
    status, _, stderr = run_main(["train", *argv, "--out", out, "--no-progress"])
    assert status == 2
    (line,) = stderr.strip().splitlines()
    assert message in line
    assert not out.exists()


def test_folding_the_target_scale_predicts_as_the_scaled_fit():
    X, y = make_regression(120, 4, noise=1.0, random_state=1)
    mean, std = y.mean(), y.std()
    reg = MLPRegressorTorch(hidden_layer_sizes=(8,), max_iter=5, random_state=0,
                            progress_bar=False).fit(X, (y - mean) / std)
    expected = reg.predict(X) * std + mean
    fold_target_scale(reg, mean, std)
    np.testing.assert_allclose(reg.predict(X), expected, rtol=1e-5,
                               atol=1e-5 * std)
    np.testing.assert_allclose(reg.intercepts_[-1],
                               reg.net_.module_.linear_layers()[-1].bias.detach())


def test_predict_writes_a_column_per_output(tmp_path, run_main):
    X, y = make_regression(60, 3, n_targets=2, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = make_pipeline(StandardScaler(), MLPRegressorTorch(
        hidden_layer_sizes=(8,), max_iter=3, random_state=0,
        progress_bar=False)).fit(frame, y)
    joblib.dump(model, tmp_path / "m.joblib")
    frame.iloc[:4].to_csv(tmp_path / "rows.csv", index=False)
    expected = model.predict(frame.iloc[:4])
    status, stdout, stderr = run_main(["predict", "--model", tmp_path / "m.joblib",
                                        tmp_path / "rows.csv"])
    assert status == 0, stderr
    values = [[float(v) for v in line.split("\t")[1:]]
              for line in stdout.strip().splitlines()]
    np.testing.assert_array_equal(values, expected)
    status, _, stderr = run_main(["predict", "--model", tmp_path / "m.joblib",
                                   "--output", tmp_path / "p.csv",
                                   tmp_path / "rows.csv"])
    assert status == 0, stderr
    written = pd.read_csv(tmp_path / "p.csv")
    assert list(written.columns) == ["prediction_0", "prediction_1"]
    np.testing.assert_array_equal(written.to_numpy(), expected)


def test_early_stopping_and_plot_for_a_regressor(tmp_path, run_main):
    pytest.importorskip("matplotlib")
    data, _ = _prices(tmp_path, n=120)
    out, plot = tmp_path / "m.joblib", tmp_path / "curves.png"
    status, stdout, stderr = run_main(
        ["train", "--data", data, "--target", "price", "--epochs", 4,
         "--early-stopping", "--plot", plot, "--out", out, "--no-progress"])
    assert status == 0, stderr
    reg = joblib.load(out)[-1]
    assert reg.early_stopping and len(reg.validation_scores_) == reg.n_iter_
    assert all("val_loss" in row and "val_r2" in row for row in reg.history_)
    assert plot.stat().st_size > 1000


def test_predict_images_with_a_python_image_regressor(digits_bunch, tmp_path, run_main):
    pytest.importorskip("PIL")
    from PIL import Image

    from sknn.datasets import load_image
    from sknn.preprocessing import PixelScaler

    model = make_pipeline(PixelScaler(max_value=16), MLPRegressorTorch(
        hidden_layer_sizes=(8,), max_iter=2, random_state=0,
        progress_bar=False)).fit(digits_bunch.images[:200],
                                 digits_bunch.target[:200].astype(float))
    joblib.dump(model, tmp_path / "m.joblib")
    path = tmp_path / "five.png"
    Image.fromarray(np.round(digits_bunch.images[5] * 255 / 16).astype(
        np.uint8)).save(path)
    status, stdout, stderr = run_main(["predict", "--model", tmp_path / "m.joblib",
                                        path])
    assert status == 0, stderr
    printed_path, value = stdout.strip().split("\t")
    assert printed_path == str(path)
    image = load_image(path, size=(8, 8), grayscale=True)
    expected = model.predict(image[np.newaxis] * np.float32(16))
    np.testing.assert_array_equal(float(value), expected[0])
