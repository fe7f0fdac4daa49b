"""ONNX export: onnxruntime agrees with predict and predict_proba for estimators,
whole Pipelines and searches, every target kind, layer and activation."""

import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelBinarizer, MinMaxScaler, StandardScaler

import sknn
from sknn import CNNClassifier, MLPClassifierTorch
from sknn._modules import ACTIVATIONS
from sknn.preprocessing import PixelScaler

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def raw_digits():
    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


def mlp(**params):
    params = {"hidden_layer_sizes": (16,), "max_iter": 3, "random_state": 0,
              "device": "cpu", **params}
    return MLPClassifierTorch(**params)


def tiny_cnn(**params):
    params = {"conv_filters": (4, 8), "dense_layer_sizes": (8,), "max_iter": 2,
              "batch_size": 32, "random_state": 0, "device": "cpu", **params}
    return CNNClassifier(**params)


def run(onx, X):
    """(labels, probabilities) from onnxruntime, fed as the graph's input type."""
    session = ort.InferenceSession(onx.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    dtype = np.uint8 if graph_input.type == "tensor(uint8)" else np.float32
    X = np.asarray(X).reshape(len(X), -1).astype(dtype)
    return session.run(["label", "probabilities"], {graph_input.name: X})


def assert_agrees(model, X, X_sample=None):
    """onnxruntime's labels equal predict's; probabilities within 1e-5."""
    onx = sknn.to_onnx(model, X[:5] if X_sample is None else X_sample)
    labels, proba = run(onx, X)
    expected = model.predict(X)
    np.testing.assert_array_equal(labels, expected)
    assert labels.shape == expected.shape
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=0, atol=1e-5)
    return onx, labels, proba


def test_digits_pipeline_is_one_graph_that_agrees(raw_digits):
    X, y = raw_digits
    pipe = make_pipeline(StandardScaler(), mlp()).fit(X, y)
    onx, _, proba = assert_agrees(pipe, X)
    # without a sample the input is float32 rows of n_features_in_: the same graph
    assert sknn.to_onnx(pipe).graph.input == onx.graph.input
    assert [i.name for i in onx.graph.input] == ["X"]
    assert [o.name for o in onx.graph.output] == ["label", "probabilities"]
    ops = {node.op_type for node in onx.graph.node}
    assert "Scaler" in ops and "Gemm" in ops  # the scaler and the net, one graph
    assert "ZipMap" not in ops
    assert proba.shape == (len(X), 10)
    onnx.checker.check_model(onx, full_check=True)


@pytest.mark.parametrize("labels", [
    pytest.param(lambda y: np.array(["cat", "dog", "emu"])[y % 3], id="strings"),
    pytest.param(lambda y: np.array(["no", "yes"])[y % 2], id="binary-strings"),
    pytest.param(lambda y: y % 2 == 0, id="bool"),
    pytest.param(lambda y: 3 + 4 * (y % 3), id="ints-3-7-11"),
    pytest.param(lambda y: (y % 3).astype(float) + 1, id="floats"),
])
def test_labels_keep_their_type(raw_digits, labels):
    X, y = raw_digits
    y = labels(y)
    clf = make_pipeline(StandardScaler(), mlp()).fit(X, y)
    _, predicted, proba = assert_agrees(clf, X)
    assert predicted.dtype.kind == np.asarray(y).dtype.kind or (
        predicted.dtype == object and np.asarray(y).dtype.kind == "U")
    assert proba.shape[1] == len(np.unique(y))


def test_one_hot_targets_export_as_one_hot_rows(raw_digits):
    X, y = raw_digits
    binarizer = LabelBinarizer().fit(y)
    clf = make_pipeline(StandardScaler(), mlp()).fit(X, binarizer.transform(y))
    _, labels, _ = assert_agrees(clf, X)
    assert labels.shape == (len(X), 10)
    np.testing.assert_array_equal(binarizer.inverse_transform(labels),
                                  binarizer.inverse_transform(clf.predict(X)))


def test_multilabel_targets_export_as_indicator_rows(raw_digits):
    X, y = raw_digits
    Y = np.stack([y % 2, y > 4, y == 3], axis=1).astype(int)
    clf = make_pipeline(StandardScaler(), mlp()).fit(X, Y)
    _, labels, proba = assert_agrees(clf, X)
    assert labels.shape == proba.shape == (len(X), 3)


def test_dropout_and_batch_norm_are_folded_away(raw_digits):
    X, y = raw_digits
    clf = make_pipeline(StandardScaler(), mlp(
        hidden_layer_sizes=(24, 12), dropout=0.3, batch_norm=True)).fit(X, y)
    onx, _, _ = assert_agrees(clf, X)
    ops = [node.op_type for node in onx.graph.node]
    assert "Dropout" not in ops and "BatchNormalization" not in ops
    assert ops.count("Gemm") == 3


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_activation(raw_digits, activation):
    X, y = raw_digits
    clf = make_pipeline(MinMaxScaler(), mlp(
        hidden_layer_sizes=(12, 8), activation=activation)).fit(X, y)
    assert_agrees(clf, X)


def test_cnn_on_8x8_digits(raw_digits):
    X, y = raw_digits
    images = X.reshape(-1, 8, 8) / 16.0
    cnn = tiny_cnn(batch_norm=True, dropout=0.2).fit(images, y)
    onx, _, _ = assert_agrees(cnn, images)
    assert onx.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 64


def test_cnn_in_a_pipeline_after_a_scaler(raw_digits):
    X, y = raw_digits
    pipe = make_pipeline(MinMaxScaler(), tiny_cnn()).fit(X, y)
    assert_agrees(pipe, X)


def test_cnn_on_28x28x1_mnist_shaped_uint8_images():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 80)
    images = rng.integers(0, 60, (80, 28, 28, 1)).astype(np.uint8)
    for digit in range(10):  # a learnable bright square per class
        images[y == digit, 2 * digit:2 * digit + 6, 4:10] = 255
    cnn = tiny_cnn(conv_filters=(4, 8, 8), max_iter=1).fit(images, y)
    # uint8 rows in: the graph divides by 255 as the estimator does
    onx, _, _ = assert_agrees(cnn, images)
    assert onx.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    # float rows in: used as they are, as predict uses float input
    floats = images.astype(np.float32) / 255
    assert_agrees(cnn, floats)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("params", [
    dict(padding="valid", kernel_size=(2, 3)),
    dict(padding="same", kernel_size=2, pool_last=True),
    dict(conv_filters=((3, 3), (4,)), pool_size=3, batch_norm=True),
    dict(conv_filters=(4,), pool_size=(2, 3), activation="tanh"),
], ids=["valid-2x3", "same-even-kernel-pool-last", "vgg-blocks-bn", "pool-2x3"])
def test_cnn_layer_options_on_odd_sized_colour_images(params):
    rng = np.random.default_rng(1)
    images = rng.random((40, 9, 11, 3)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    cnn = tiny_cnn(**{"conv_filters": (3, 4), **params}).fit(images, y)
    assert_agrees(cnn, images)


def test_pipeline_refitted_by_grid_search(raw_digits):
    X, y = raw_digits
    search = GridSearchCV(
        Pipeline([("scaler", StandardScaler()), ("pca", PCA(16)), ("clf", mlp())]),
        {"clf__hidden_layer_sizes": [(8,), (16,)]}, cv=2).fit(X, y)
    assert_agrees(search, X)
    assert_agrees(search.best_estimator_, X)


def test_pixel_scaler_pipeline(raw_digits):
    X, y = raw_digits
    images = (X.reshape(-1, 8, 8) * 15).astype(np.uint8)
    pipe = Pipeline([("pixels", PixelScaler()), ("scaler", StandardScaler()),
                     ("clf", mlp())]).fit(images, y)
    onx, _, _ = assert_agrees(pipe, images)
    assert "Div" in {node.op_type for node in onx.graph.node}


def test_search_without_refit_is_refused(raw_digits):
    X, y = raw_digits
    search = GridSearchCV(mlp(), {"alpha": [1e-4, 1e-3]}, cv=2, refit=False)
    search.fit(X[:100], y[:100])
    with pytest.raises(ValueError, match="refit=False"):
        sknn.to_onnx(search, X[:1])


def test_models_not_ending_in_an_sknn_classifier_are_refused(raw_digits):
    X, y = raw_digits
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=50))
    with pytest.raises(TypeError, match="ending in LogisticRegression"):
        sknn.to_onnx(pipe.fit(X, y), X[:1])


def test_unfitted_and_wrongly_shaped_samples_are_refused(raw_digits):
    X, y = raw_digits
    with pytest.raises(NotFittedError):
        sknn.to_onnx(mlp(), X[:1])
    clf = mlp().fit(X, y)
    with pytest.raises(ValueError, match="X_sample has 10 features per row, but"):
        sknn.to_onnx(clf, X[:1, :10])
    with pytest.raises(ValueError, match=r"Pass X\[:1\], not X\[0\]"):
        sknn.to_onnx(clf, X[0])


def test_missing_extra_is_named(monkeypatch, raw_digits):
    X, y = raw_digits
    clf = mlp(max_iter=1).fit(X, y)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(ImportError, match=r"pip install 'sknn\[deploy\]'"):
        sknn.to_onnx(clf, X[:1])


def test_import_sknn_does_not_import_the_deployment_packages():
    code = ("import sys, sknn; "
            "print(sorted(m for m in ('onnx', 'skl2onnx', 'safetensors', "
            "'onnxruntime') if m in sys.modules)); "
            "print(callable(sknn.to_onnx), callable(sknn.save), callable(sknn.load))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True True True"


@pytest.mark.gpu
def test_gpu_fitted_model_exports(raw_digits):
    X, y = raw_digits
    images = X.reshape(-1, 8, 8) / 16.0
    for model, data in [(make_pipeline(StandardScaler(), mlp(device="cuda")), X),
                        (tiny_cnn(device="cuda", batch_norm=True), images)]:
        model.fit(data, y)
        _, proba = run(sknn.to_onnx(model, data[:1]), data)
        np.testing.assert_allclose(proba, model.predict_proba(data), atol=1e-5)


# ------------------------------------------- identity steps, columns, metadata
@pytest.mark.parametrize("steps", [
    [("skip", "passthrough"), ("scaler", StandardScaler()), ("clf", None)],
    [("scaler", StandardScaler()), ("skip", None), ("clf", None)],
    [("skip", None), ("clf", None)],
], ids=["passthrough first", "None inside", "only the classifier"])
def test_identity_steps_are_left_out(raw_digits, steps):
    X, y = raw_digits
    steps = [(name, mlp() if name == "clf" else step) for name, step in steps]
    pipe = Pipeline(steps).fit(X, y)
    assert_agrees(pipe, X)
    # the input width comes from the first step that does something
    labels, _ = run(sknn.to_onnx(pipe), X[:20])
    np.testing.assert_array_equal(labels, pipe.predict(X[:20]))


def test_columns_picked_by_name_are_refused(raw_digits):
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer

    X, y = raw_digits
    frame = pd.DataFrame(X[:, :3], columns=["a", "b", "c"])
    pipe = Pipeline([("columns", ColumnTransformer([("num", StandardScaler(),
                                                     ["a", "b"])])),
                     ("clf", mlp())]).fit(frame, y)
    with pytest.raises(NotImplementedError,
                       match=r"picks DataFrame columns by name \(\['a', 'b'\]\)"):
        sknn.to_onnx(pipe)
    # by position, the same columns export
    pipe = Pipeline([("columns", ColumnTransformer([("num", StandardScaler(),
                                                     [0, 1])])),
                     ("clf", mlp())]).fit(X[:, :3], y)
    assert_agrees(pipe, X[:, :3])


def test_metadata_describes_the_input_and_is_read_back(raw_digits, tmp_path):
    """to_onnx's metadata carries what a reader needs: OnnxModel rebuilds the
    PixelScaler from it (same statistics, same warnings) and predicts as the
    Pipeline does."""
    import json
    import warnings

    from sknn._onnx import METADATA_KEY
    from sknn._onnx_runtime import OnnxModel

    X, y = raw_digits
    images = X.reshape(-1, 8, 8)
    pipe = Pipeline([("pixels", PixelScaler(16.0)), ("scaler", StandardScaler()),
                     ("clf", mlp())]).fit(images, y)
    onx = sknn.to_onnx(pipe)
    spec = json.loads({p.key: p.value for p in onx.metadata_props}[METADATA_KEY])
    assert spec["kind"] == "image" and spec["image_shape"] == [8, 8, 1]
    assert spec["max_value"] == 16.0 and spec["n_features"] == 64
    assert spec["classes"] == pipe.classes_.tolist()
    path = tmp_path / "m.onnx"
    path.write_bytes(onx.SerializeToString())
    model = OnnxModel(path)
    scaler, original = model.input_spec_["pixel_scaler"], pipe["pixels"]
    for key in ("n_features_in_", "image_shape_", "mean_", "value_range_",
                "background_", "color_mode_", "max_value"):
        assert getattr(scaler, key) == getattr(original, key), key
    labels, proba = model.labels_and_proba(images[:50])
    np.testing.assert_array_equal(labels, pipe.predict(images[:50]))
    np.testing.assert_allclose(proba, pipe.predict_proba(images[:50]), atol=1e-5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.labels_and_proba(16 - images[:1])  # dark-on-light
        pipe.predict(16 - images[:1])
    assert len(caught) == 2 and str(caught[0].message) == str(caught[1].message)
    # a table model: unnamed columns of the fitted width
    table = json.loads({p.key: p.value for p in sknn.to_onnx(
        mlp().fit(X, y)).metadata_props}[METADATA_KEY])
    assert table["kind"] == "table" and table["feature_names"] is None
    assert table["n_features"] == 64 and "pixel_scaler" not in table


def test_graphs_that_are_not_classifiers_are_refused(tmp_path):
    from onnx import TensorProto, helper

    from sknn._onnx_runtime import OnnxModel

    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])], "identity",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])])
    path = tmp_path / "identity.onnx"
    path.write_bytes(helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    with pytest.raises(ValueError,
                       match="is not an sknn classifier or regressor graph"):
        OnnxModel(path)
