"""MLPRegressorTorch where the classifier goes: Pipelines, target transforms,
scikit-learn's searches, joblib in a fresh process."""

import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import make_regression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknn import MLPRegressorTorch


@pytest.fixture(scope="module")
def data():
    # features and target on scales a network does not train on unscaled
    X, y = make_regression(n_samples=120, n_features=5, noise=1.0, random_state=0)
    return X * [1, 10, 100, 1000, 1e4], 500.0 + 200.0 * y


def _reg(**kwargs):
    return MLPRegressorTorch(hidden_layer_sizes=(16,), solver="lbfgs", max_iter=300,
                             random_state=0, device="cpu", **kwargs)


def test_pipeline_and_transformed_target(data):
    X, y = data
    raw = _reg().fit(X, y).score(X, y)
    model = TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), _reg()),
        transformer=StandardScaler()).fit(X, y)
    # scaling X and y is what makes the problem learnable
    assert model.score(X, y) > 0.95 > raw
    # the pipeline's network saw the scaled target, its predictions come back
    # in y's units
    inner = model.regressor_
    scaled = inner.predict(X)
    assert abs(scaled.mean()) < 1 and abs(model.predict(X).mean() - y.mean()) < 50
    assert_allclose(model.predict(X),
                    model.transformer_.inverse_transform(scaled[:, None]).ravel())


def test_grid_search_picks_by_r2(data):
    X, y = data
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    search = GridSearchCV(
        MLPRegressorTorch(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=100,
                          random_state=0, device="cpu"),
        {"alpha": [1e-4, 100.0]}, cv=KFold(3), scoring="r2").fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    # an alpha of 100 shrinks the weights to nothing: a worse R^2
    assert scores[0] > scores[1] and search.best_params_ == {"alpha": 1e-4}
    assert search.best_estimator_.score(X, y) == pytest.approx(search.score(X, y))


def test_joblib_round_trip_in_a_fresh_process(data, tmp_path):
    X, y = data
    model = make_pipeline(StandardScaler(), _reg(early_stopping=False)).fit(X, y)
    path = tmp_path / "reg.joblib"
    joblib.dump(model, path)
    np.save(tmp_path / "X.npy", X)
    pred, X_file = str(tmp_path / "pred.npy"), str(tmp_path / "X.npy")
    code = textwrap.dedent(f"""
        import joblib, numpy as np
        model = joblib.load({str(path)!r})
        np.save({pred!r}, model.predict(np.load({X_file!r})))
        reg = model[-1]
        print(type(reg.net_).__name__, reg.n_outputs_, reg.out_activation_)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    assert out.split() == ["SknnRegressorNet", "1", "identity"]
    assert_array_equal(np.load(tmp_path / "pred.npy"), model.predict(X))
    # a loaded model keeps training: partial_fit from its weights
    loaded = joblib.load(path)
    before = loaded[-1].coefs_[0].copy()
    loaded[-1].set_params(solver="sgd").partial_fit(
        loaded[0].transform(X), y / y.std())
    assert not np.array_equal(before, loaded[-1].coefs_[0])


def test_sknn_save_and_load(data, tmp_path):
    import sknn

    X, y = data
    Y = np.c_[y, -y] / y.std()
    model = make_pipeline(StandardScaler(), MLPRegressorTorch(
        hidden_layer_sizes=(8,), batch_norm=True, max_iter=5, random_state=0,
        device="cpu")).fit(X, Y)
    sknn.save(model, tmp_path / "reg.sknn")
    loaded = sknn.load(tmp_path / "reg.sknn")
    assert_array_equal(loaded.predict(X), model.predict(X))
    reg = loaded[-1]
    assert type(reg) is MLPRegressorTorch and reg.n_outputs_ == 2
    assert reg.loss_curve_ == model[-1].loss_curve_
    assert type(reg.net_).__name__ == "SknnRegressorNet"
    # a Poisson model keeps its exponential output
    Xs = X / X.std(axis=0)
    counts = MLPRegressorTorch(loss="poisson", hidden_layer_sizes=(4,), max_iter=3,
                               random_state=0, device="cpu").fit(Xs, np.abs(Y[:, 0]))
    sknn.save(counts, tmp_path / "counts.sknn")
    again = sknn.load(tmp_path / "counts.sknn")
    assert again.out_activation_ == "exp"
    assert_array_equal(again.predict(Xs), counts.predict(Xs))


@pytest.mark.parametrize("kwargs", [{}, {"batch_norm": True, "dropout": 0.2},
                                    {"loss": "poisson"}])
def test_onnx_agrees_with_predict(data, kwargs):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skl2onnx")
    import sknn

    X, y = data
    # two outputs, one, and non-negative counts for the Poisson loss
    y = np.c_[y, -y] / y.std() if not kwargs else np.abs(y / y.std())
    X_scaled = StandardScaler().fit_transform(X)

    def reg():
        return MLPRegressorTorch(hidden_layer_sizes=(8,), max_iter=5,
                                 random_state=0, device="cpu", **kwargs)

    for model, Xm in ((make_pipeline(StandardScaler(), reg()).fit(X, y), X),
                      (reg().fit(X_scaled, y), X_scaled)):
        onx = sknn.to_onnx(model, Xm[:1])
        session = ort.InferenceSession(onx.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == ["variable"]
        (out,) = session.run(None, {"X": Xm.astype(np.float32)})
        expected = model.predict(Xm)
        assert out.shape == (len(X), 1 if expected.ndim == 1 else 2)
        assert_allclose(out.reshape(expected.shape), expected, rtol=1e-5, atol=1e-5)


def test_plot_history_of_a_regressor(data, tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from sknn.plotting import plot_history

    X, y = data
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    reg = MLPRegressorTorch(hidden_layer_sizes=(8,), max_iter=4, early_stopping=True,
                            random_state=0, device="cpu").fit(X, y)
    fig = plot_history(reg, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 0
    loss_ax, r2_ax = fig.axes
    assert [line.get_label() for line in loss_ax.lines] == ["train", "validation"]
    # the R^2 panel shows the validation scores, there is no training R^2
    assert list(r2_ax.lines[0].get_ydata()) == reg.validation_scores_
    plain = MLPRegressorTorch(hidden_layer_sizes=(8,), max_iter=2, random_state=0,
                              device="cpu").fit(X, y)
    assert len(plot_history(plain).axes) == 1
