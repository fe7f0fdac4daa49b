"""The pickle-free format: round trips that predict identically and keep
training, loads that run no pickle, and clear refusals of bad files."""

import copy
import hashlib
import json
import os
import pickle
import sys
import zipfile

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_diabetes, load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    Binarizer,
    FunctionTransformer,
    LabelBinarizer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    QuantileTransformer,
    RobustScaler,
    StandardScaler,
)
from skorch.callbacks import EpochScoring

import sknn
from sknn import CNNClassifier, MLPClassifierTorch, MLPRegressorTorch
from sknn._safe import SafeFormatError
from sknn.preprocessing import PixelScaler

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: history and result attributes a loaded estimator must carry over
FITTED = ("classes_", "n_features_in_", "n_iter_", "loss_", "loss_curve_",
          "best_loss_", "validation_scores_", "best_validation_score_", "t_",
          "n_outputs_", "out_activation_", "history_", "n_layers_")


@pytest.fixture(scope="module")
def raw_digits():
    X, y = load_digits(return_X_y=True)
    return X[:500], y[:500]


def mlp(**params):
    params = {"hidden_layer_sizes": (16,), "max_iter": 3, "random_state": 0,
              "device": "cpu", **params}
    return MLPClassifierTorch(**params)


@pytest.fixture(scope="module")
def pipe(raw_digits):
    X, y = raw_digits
    labels = np.array(["zero", "one", "two"])[y % 3]
    model = Pipeline([("scaler", StandardScaler()), ("pca", PCA(20)), ("clf", mlp(
        hidden_layer_sizes=(24, 12), batch_norm=True, dropout=0.2,
        class_weight={"zero": 2.0, "one": 1.0, "two": 1.0}))])
    return model.fit(X, labels), X, labels


@pytest.fixture()
def path(tmp_path):
    return tmp_path / "model.sknn"


def no_code_load(path, monkeypatch):
    """sknn.load with pickle, joblib, numpy's and torch's loaders made to fail."""
    def refuse(*args, **kwargs):
        raise AssertionError("loading called a pickle-based loader")

    with monkeypatch.context() as patch:
        for module, name in [(pickle, "load"), (pickle, "loads"),
                             (pickle, "Unpickler"), (torch, "load"),
                             (joblib, "load"), (np, "load")]:
            patch.setattr(module, name, refuse)
        return sknn.load(path)


def assert_same_model(loaded, model, X):
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert type(loaded) is type(model)
    assert repr(loaded.get_params()) == repr(model.get_params())
    estimator = loaded[-1] if isinstance(loaded, Pipeline) else loaded
    original = model[-1] if isinstance(model, Pipeline) else model
    for name in FITTED:
        assert repr(getattr(estimator, name)) == repr(getattr(original, name)), name
    for a, b in zip(estimator.coefs_, original.coefs_):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype


def test_pipeline_round_trip_runs_no_pickle(pipe, path, monkeypatch):
    model, X, _ = pipe
    assert sknn.save(model, path) == path
    loaded = no_code_load(path, monkeypatch)
    assert_same_model(loaded, model, X)
    assert loaded["clf"].device_ == "cpu"
    assert loaded["clf"].target_encoder_.kind_ == "multiclass"


def test_file_is_a_zip_of_json_and_safetensors(pipe, path):
    from safetensors.numpy import load as load_safetensors

    model, _, _ = pipe
    sknn.save(model, path)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["sknn.json", "arrays.safetensors"]
        document = json.loads(archive.read("sknn.json"))
        arrays = load_safetensors(archive.read("arrays.safetensors"))
    assert document["format"] == "sknn-safe"
    assert document["model"]["steps"][2][1]["__object__"] == "sknn.MLPClassifierTorch"
    for key, tensor in model["clf"].net_.module_.state_dict().items():
        np.testing.assert_array_equal(arrays[f"model/steps/2/module/{key}"],
                                      tensor.numpy())
    # no optimizer state: the weights, batch-norm statistics, scaler and PCA
    n_weights = sum(t.numel() for t in model["clf"].net_.module_.state_dict().values())
    assert sum(a.size for a in arrays.values()) < n_weights + 5 * 64 + 20 * 64 + 100


def test_every_json_tag_round_trips_its_type():
    from sknn._safe_document import Reader, Writer

    value = {
        "tuple": (1, (2.5, "a"), None), "list": [True, False],
        "nan": float("nan"), "inf": float("-inf"), "int64": np.int64(7),
        "float32": np.float32(0.1), "bool": np.bool_(True),
        "dtype": np.dtype("float64"), "unicode": np.array(["ab", "c"]),
        "objects": np.array(["x", "yz"], dtype=object),
        "uint8": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "int-keys": {0: 1.0, 3: 2.0}, "__dunder": 1,
    }
    writer = Writer()
    document = json.loads(json.dumps(writer.encode(value, "v"), allow_nan=False))
    decoded = Reader(writer.arrays).decode(document)
    assert decoded.keys() == value.keys()
    for key, original in value.items():
        got = decoded[key]
        assert type(got) is type(original), key
        if isinstance(original, np.ndarray):
            assert got.dtype == original.dtype and got.shape == original.shape
            np.testing.assert_array_equal(got, original)
        elif key != "nan":
            assert got == original, key
    assert np.isnan(decoded["nan"])


def test_dataframe_feature_names_and_early_stopping_history(raw_digits, path,
                                                            monkeypatch):
    X, y = raw_digits
    frame = pd.DataFrame(X).add_prefix("pixel")
    model = mlp(early_stopping=True, n_iter_no_change=np.inf).fit(frame, y)
    sknn.save(model, path)
    loaded = no_code_load(path, monkeypatch)
    assert_same_model(loaded, model, frame)
    np.testing.assert_array_equal(loaded.feature_names_in_, model.feature_names_in_)
    assert loaded.n_iter_no_change == np.inf


@pytest.mark.parametrize("target", ["onehot", "multilabel", "binary-bool"])
def test_target_kinds_round_trip(raw_digits, path, monkeypatch, target):
    X, y = raw_digits
    Y = {"onehot": lambda: LabelBinarizer().fit_transform(y),
         "multilabel": lambda: np.stack([y % 2, y > 4], axis=1),
         "binary-bool": lambda: y % 2 == 0}[target]()
    model = make_pipeline(MinMaxScaler(), mlp()).fit(X, Y)
    sknn.save(model, path)
    assert_same_model(no_code_load(path, monkeypatch), model, X)


def test_cnn_round_trip(raw_digits, path, monkeypatch):
    X, y = raw_digits
    images = (X.reshape(-1, 8, 8) * 15).astype(np.uint8)
    cnn = CNNClassifier(conv_filters=(4, (6, 6)), dense_layer_sizes=(8,),
                        batch_norm=True, max_iter=2, batch_size=64, random_state=0,
                        device="cpu", augment={"rotation_range": 5}).fit(images, y)
    sknn.save(cnn, path)
    loaded = no_code_load(path, monkeypatch)
    np.testing.assert_array_equal(loaded.predict_proba(images),
                                  cnn.predict_proba(images))
    assert loaded.input_shape_ == cnn.input_shape_ == (8, 8, 1)
    assert loaded.conv_filters == (4, (6, 6))
    assert loaded.history_ == cnn.history_


def test_every_supported_transformer_round_trips(raw_digits, path, monkeypatch):
    X, y = raw_digits
    model = make_pipeline(RobustScaler(), MaxAbsScaler(), MinMaxScaler((-1, 1)),
                          Normalizer(), "passthrough", StandardScaler(),
                          PCA(10, whiten=True), mlp()).fit(X, y)
    sknn.save(model, path)
    loaded = no_code_load(path, monkeypatch)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    # the same values in the same memory order (PCA's components_ is
    # Fortran-ordered): the float64 transforms agree to the last bit
    np.testing.assert_array_equal(loaded[:-1].transform(X), model[:-1].transform(X))
    for a, b in zip(loaded[:-1], model[:-1]):
        if b == "passthrough":
            continue
        for key, value in vars(b).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(getattr(a, key), value)
    assert loaded[2].feature_range == (-1, 1)


def test_pixel_scaler_pipeline_round_trips(raw_digits, path, monkeypatch):
    X, y = raw_digits
    images = (X.reshape(-1, 8, 8) * 15).astype(np.uint8)
    model = Pipeline([("pixels", PixelScaler()), ("scaler", StandardScaler()),
                      ("clf", mlp())]).fit(images, y)
    sknn.save(model, path)
    loaded = no_code_load(path, monkeypatch)
    np.testing.assert_array_equal(loaded.predict_proba(images),
                                  model.predict_proba(images))
    assert loaded["pixels"].image_shape_ == model["pixels"].image_shape_


def test_loaded_model_keeps_training(raw_digits, path):
    X, y = raw_digits
    model = make_pipeline(StandardScaler(), mlp(max_iter=15)).fit(X, y)
    sknn.save(model, path)

    loaded = sknn.load(path)
    Xs = loaded[0].transform(X)
    before = loaded[-1].coefs_[0].copy()
    loaded[-1].partial_fit(Xs, y)
    assert len(loaded[-1].loss_curve_) == len(model[-1].loss_curve_) + 1
    assert not np.array_equal(loaded[-1].coefs_[0], before)

    warm = sknn.load(path)
    warm.set_params(mlpclassifiertorch__warm_start=True,
                    mlpclassifiertorch__max_iter=1).fit(X, y)
    fresh = make_pipeline(StandardScaler(), mlp(max_iter=1)).fit(X, y)
    # one more epoch from the saved weights, not from a new initialisation
    assert warm[-1].loss_ < min(fresh[-1].loss_, model[-1].loss_curve_[10])
    assert warm[-1].loss_curve_[:-1] == model[-1].loss_curve_


def test_save_is_atomic(pipe, path):
    model, _, _ = pipe
    sknn.save(model, path)
    before = path.read_bytes()
    bad = make_pipeline(Binarizer(), mlp())
    bad.steps[-1] = ("mlp", model["clf"])
    with pytest.raises(TypeError, match="Binarizer"):
        sknn.save(bad, path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_interrupted_write_leaves_the_old_file(pipe, path, monkeypatch):
    import sknn._safe as safe

    model, _, _ = pipe
    sknn.save(model, path)
    before = path.read_bytes()

    def fail_half_way(f, text, arrays):
        f.write(text[:100])
        raise OSError("disk full")

    monkeypatch.setattr(safe, "_write_archive", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        sknn.save(model, path)
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == [path.name]


def test_unsupported_models_and_parameters_are_refused(raw_digits, path):
    X, y = raw_digits
    with pytest.raises(NotFittedError):
        sknn.save(mlp(), path)
    with_callbacks = mlp(max_iter=1, callbacks=[EpochScoring("f1_macro")]).fit(X, y)
    with pytest.raises(ValueError, match=r"set_params\(callbacks=None\)"):
        sknn.save(with_callbacks, path)
    seeded = mlp(max_iter=1, random_state=np.random.RandomState(0)).fit(X, y)
    with pytest.raises(TypeError, match="random_state to an int"):
        sknn.save(seeded, path)
    nested = make_pipeline(make_pipeline(StandardScaler()), seeded)
    with pytest.raises(TypeError, match="nested in another"):
        sknn.save(nested, path)
    search = GridSearchCV(mlp(max_iter=1), {"alpha": [1e-4]}, cv=2).fit(X, y)
    with pytest.raises(TypeError, match="save its best_estimator_"):
        sknn.save(search, path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sknn.save(search.best_estimator_, path.parent / "missing" / "model.sknn")
    assert not path.exists()


def rewrite(path, edit_json=None, arrays=None, fix_checksum=True):
    """Rewrite a saved file with its JSON edited, as a tamperer would."""
    with zipfile.ZipFile(path) as archive:
        text = archive.read("sknn.json")
        arrays = archive.read("arrays.safetensors") if arrays is None else arrays
        comment = archive.comment
    if edit_json is not None:
        edited = edit_json(text.decode()).encode()
        assert edited != text, "the edit changed nothing"
        text = edited
    if fix_checksum:
        comment = b"sknn-json-sha256:" + hashlib.sha256(text).hexdigest().encode()
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sknn.json", text)
        archive.writestr("arrays.safetensors", arrays)
        archive.comment = comment


def edit_document(text, edit):
    document = json.loads(text)
    edit(document)
    return json.dumps(document)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('"sklearn.decomposition.PCA"', '"os.system"'),
     "names the class 'os.system', which the safe format does not load"),
    (lambda t: t.replace('"sklearn.decomposition.PCA"',
                         '"sklearn.preprocessing.Binarizer"'),
     "Binarizer', which the safe format does not load"),
    (lambda t: t.replace('"with_std": true', '"with_std": true, "func": "eval"'),
     r"StandardScaler has no parameter\(s\) \['func'\]"),
    (lambda t: edit_document(t, lambda doc: doc["model"]["steps"][2][1]["params"][
        "hidden_layer_sizes"]["__tuple__"].__setitem__(0, 25)),
     "the weights do not fit the network"),
    (lambda t: edit_document(t, lambda doc: doc["model"]["steps"][2][1][
        "attributes"].pop("target_encoder_")),
     r"the estimator lacks \['target_encoder_'\]"),
    (lambda t: edit_document(t, lambda doc: doc["model"]["steps"][0][1][
        "attributes"].__setitem__("transform", 1)),
     "StandardScaler cannot have an attribute 'transform'"),
    (lambda t: t.replace('"format_version": 1', '"format_version": 99'),
     "format_version 99"),
    (lambda t: t[:-10], "is not valid JSON"),
    (lambda t: t.replace('"__tuple__"', '"__pickle__"', 1), "unknown tag"),
], ids=["os-system", "unknown-transformer", "extra-parameter", "wrong-shape",
        "no-target-encoder", "shadowed-method", "future-version", "broken-json",
        "unknown-tag"])
def test_tampered_json_is_refused(pipe, path, edit, message):
    model, _, _ = pipe
    sknn.save(model, path)
    rewrite(path, edit)
    with pytest.raises(SafeFormatError, match=message):
        sknn.load(path)


def test_edited_or_swapped_members_fail_their_checksums(pipe, path, raw_digits):
    model, _, _ = pipe
    sknn.save(model, path)
    rewrite(path, lambda t: t.replace('"zero"', '"nil"'), fix_checksum=False)
    with pytest.raises(SafeFormatError, match="edited or corrupted"):
        sknn.load(path)

    other = path.parent / "other.sknn"
    X, y = raw_digits
    sknn.save(make_pipeline(StandardScaler(), PCA(20), mlp()).fit(X, y), other)
    with zipfile.ZipFile(other) as archive:
        foreign = archive.read("arrays.safetensors")
    sknn.save(model, path)
    rewrite(path, arrays=foreign)
    with pytest.raises(SafeFormatError, match="changed or corrupted"):
        sknn.load(path)


def test_truncated_and_foreign_files_are_refused(pipe, path):
    model, _, _ = pipe
    sknn.save(model, path)
    data = path.read_bytes()
    for size in (len(data) // 2, len(data) - 30, 10):
        path.write_bytes(data[:size])
        with pytest.raises(SafeFormatError, match="truncated"):
            sknn.load(path)
    joblib.dump({"a": 1}, path)
    with pytest.raises(SafeFormatError, match="looks like a pickle"):
        sknn.load(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sknn.load(path.parent / "nothing.sknn")


def test_missing_extra_is_named(pipe, path, monkeypatch):
    model, _, _ = pipe
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    with pytest.raises(ImportError, match=r"pip install 'sknn\[deploy\]'"):
        sknn.save(model, path)
    with pytest.raises(ImportError, match=r"pip install 'sknn\[deploy\]'"):
        sknn.load(path)


@pytest.mark.gpu
def test_gpu_fitted_model_saves_and_loads_on_the_cpu(raw_digits, path):
    X, y = raw_digits
    model = mlp(device="cuda", batch_norm=True).fit(X, y)
    sknn.save(model, path)
    loaded = sknn.load(path)
    assert loaded.device_ == "cpu" and loaded.device == "cuda"
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X),
                               atol=1e-5)


# ------------------------------------------------- what a file may carry
def test_every_parameter_of_every_allowed_class_is_classified():
    """The audit table covers each constructor parameter of each class a file
    may name: a class that gains a parameter fails here until someone decides
    whether it is plain data or reaches outside the model."""
    import inspect

    from sknn import _safe_classes as classes
    from sknn._safe import SAFE_CLASSES

    assert set(classes.PARAMETERS) == set(SAFE_CLASSES)
    for name in SAFE_CLASSES:
        cls = classes.class_of(name)
        assert set(inspect.signature(cls).parameters) == set(
            classes.PARAMETERS[name]), name
        for parameter, (kind, why) in classes.PARAMETERS[name].items():
            assert kind in (classes.DATA, classes.REFUSED, classes.STEPS,
                            classes.OBJECT, classes.UFUNC), parameter
            assert len(why) > 5, parameter
    refused = {(name, p) for name, table in classes.PARAMETERS.items()
               for p, (kind, _) in table.items() if kind == classes.REFUSED}
    assert refused == {("sklearn.pipeline.Pipeline", "memory"),
                       ("sknn.MLPClassifierTorch", "callbacks"),
                       ("sknn.CNNClassifier", "callbacks"),
                       ("sknn.MLPRegressorTorch", "callbacks"),
                       ("sklearn.preprocessing.FunctionTransformer", "kw_args"),
                       ("sklearn.preprocessing.FunctionTransformer",
                        "inv_kw_args")}
    # the only functions a file may name: numpy ufuncs, by a fixed table
    functions = {(name, p) for name, table in classes.PARAMETERS.items()
                 for p, (kind, _) in table.items() if kind == classes.UFUNC}
    assert {p for _, p in functions} == {"func", "inverse_func"}
    assert all(isinstance(f, np.ufunc) for f in classes.UFUNCS.values())


def test_pipeline_memory_is_refused_at_save_and_at_load(pipe, path, tmp_path,
                                                        monkeypatch):
    model, X, labels = pipe
    monkeypatch.chdir(tmp_path)
    for memory in ("cache", joblib.Memory(str(tmp_path / "joblib"), verbose=0)):
        cached = Pipeline(model.steps, memory=memory)
        with pytest.raises(ValueError, match=r"'memory' must be None.*"
                                             r"set_params\(memory=None\)"):
            sknn.save(cached, path)
        assert not path.exists()
    sknn.save(model, path)
    (tmp_path / "cache").mkdir()  # a poisoned cache shipped beside the model
    for value in ('"cache"', '"/tmp"', '{"__tuple__": ["cache"]}'):
        rewrite(path, lambda t, value=value: t.replace('"memory": null',
                                                      f'"memory": {value}'))
        with pytest.raises(SafeFormatError, match="'memory' must be None"):
            sknn.load(path)
        sknn.save(model, path)
    assert sknn.load(path).memory is None


def test_callbacks_and_rebuilt_state_cannot_come_from_a_file(pipe, path):
    model, X, _ = pipe
    sknn.save(model, path)

    def estimator(doc):
        return doc["model"]["steps"][2][1]

    edits = {
        "'callbacks' must be None": lambda doc: estimator(doc)["params"].__setitem__(
            "callbacks", ["Checkpoint", {"dirname": "/tmp/x"}]),
        "cannot have an attribute 'net_'": lambda doc: estimator(doc)[
            "attributes"].__setitem__("net_", "x"),
        "cannot have an attribute 'device_'": lambda doc: estimator(doc)[
            "attributes"].__setitem__("device_", "cuda:7"),
        "cannot have an attribute 'alpha'": lambda doc: estimator(doc)[
            "attributes"].__setitem__("alpha", 1.0),
        "cannot have an attribute 'callbacks'": lambda doc: (
            estimator(doc)["params"].pop("callbacks"),
            estimator(doc)["attributes"].__setitem__("callbacks", ["x"])),
        "parameters are plain data": lambda doc: estimator(doc)["params"][
            "class_weight"].__setitem__("zero", {
                "__object__": "sknn.TargetEncoder", "params": {"classes": None},
                "attributes": {}}),
        "parameters are invalid": lambda doc: estimator(doc)["params"].__setitem__(
            "activation", "os.system"),
        "contradicts its classes_": lambda doc: estimator(doc)["attributes"][
            "classes_"].__setitem__("__strings__", ["a", "b", "c"]),
    }
    for message, change in edits.items():
        sknn.save(model, path)
        rewrite(path, lambda t, change=change: edit_document(t, change))
        with pytest.raises(SafeFormatError, match=message):
            sknn.load(path)


# ------------------------------------------- TransformedTargetRegressor
@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return X[:150], y[:150]


def reg(**params):
    params = {"hidden_layer_sizes": (8,), "max_iter": 5, "random_state": 0,
              "device": "cpu", **params}
    return MLPRegressorTorch(**params)


@pytest.fixture(scope="module")
def target_model(diabetes):
    X, y = diabetes
    model = TransformedTargetRegressor(
        regressor=Pipeline([("scaler", StandardScaler()), ("mlp", reg())]),
        transformer=StandardScaler())
    return model.fit(X, y)


def test_target_regressor_round_trips_to_the_last_bit(target_model, diabetes,
                                                      path, monkeypatch):
    X, y = diabetes
    sknn.save(target_model, path)
    loaded = no_code_load(path, monkeypatch)
    assert type(loaded) is TransformedTargetRegressor
    np.testing.assert_array_equal(loaded.predict(X), target_model.predict(X))
    assert repr(loaded.get_params()) == repr(target_model.get_params())
    assert loaded._training_dim == 1 and loaded.n_features_in_ == 10
    np.testing.assert_array_equal(loaded.transformer_.scale_,
                                  target_model.transformer_.scale_)
    for a, b in zip(loaded.regressor_[-1].coefs_, target_model.regressor_[-1].coefs_):
        np.testing.assert_array_equal(a, b)
    assert loaded.regressor_[-1].loss_curve_ == target_model.regressor_[-1].loss_curve_
    # the regressor and transformer it was given come back unfitted, as fit
    # left them: a refit of the loaded model is a refit of the saved one
    with pytest.raises(NotFittedError):
        loaded.regressor[-1].predict(X)
    np.testing.assert_array_equal(loaded.fit(X, y).predict(X),
                                  clone(target_model).fit(X, y).predict(X))


@pytest.mark.parametrize("kind", ["no-transformer", "in-a-pipeline", "log1p",
                                  "function-transformer"])
def test_target_regressor_shapes_round_trip(diabetes, path, kind):
    X, y = diabetes
    if kind == "no-transformer":  # fit wraps the identity in a FunctionTransformer
        model = TransformedTargetRegressor(regressor=reg())
    elif kind == "in-a-pipeline":  # and two outputs
        model = make_pipeline(StandardScaler(), TransformedTargetRegressor(
            reg(batch_norm=True), transformer=MinMaxScaler()))
        y = np.c_[y, y / 2]
    elif kind == "log1p":
        model = TransformedTargetRegressor(
            make_pipeline(StandardScaler(), reg()), func=np.log1p,
            inverse_func=np.expm1)
    else:
        model = TransformedTargetRegressor(make_pipeline(StandardScaler(), reg()),
                                           transformer=FunctionTransformer(
                                               np.sqrt, np.square))
    model.fit(X, y)
    sknn.save(model, path)
    loaded = sknn.load(path)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert repr(loaded.get_params()) == repr(model.get_params())
    ttr = loaded[-1] if kind == "in-a-pipeline" else loaded
    assert type(ttr.transformer_) is type(
        (model[-1] if kind == "in-a-pipeline" else model).transformer_)


def test_functions_outside_the_table_are_refused_at_save(diabetes, path):
    X, y = diabetes
    for func, inverse, shown in [
            (lambda t: t / 100, lambda t: t * 100, "the function <lambda>"),
            (np.cbrt, np.cbrt, "the ufunc cbrt")]:
        model = TransformedTargetRegressor(reg(), func=func, inverse_func=inverse,
                                           check_inverse=False).fit(X, y)
        with pytest.raises(ValueError, match=(
                rf"TransformedTargetRegressor's 'func' is {shown}.*numpy's log, "
                r"exp, log1p, expm1, sqrt, square.*transformer=StandardScaler\(\)")):
            sknn.save(model, path)
    transformer = make_pipeline(FunctionTransformer(np.sin), StandardScaler(),
                                reg()).fit(X, y)
    with pytest.raises(ValueError, match="FunctionTransformer's 'func' is the "
                                         "ufunc sin"):
        sknn.save(transformer, path)
    keywords = make_pipeline(FunctionTransformer(np.log1p, kw_args={}),
                             reg()).fit(X, y)
    with pytest.raises(ValueError, match=r"'kw_args' must be None.*out="):
        sknn.save(keywords, path)
    assert not path.exists()


def test_target_regressors_the_format_does_not_hold_are_refused_at_save(
        diabetes, raw_digits, path):
    X, y = diabetes
    linear = TransformedTargetRegressor(LinearRegression()).fit(X, y)
    with pytest.raises(TypeError, match=r"regressor is an MLPRegressorTorch or a "
                                        r"Pipeline ending in one; model/regressor_ "
                                        r"is a LinearRegression\."):
        sknn.save(linear, path)
    Xd, yd = raw_digits
    classifier = TransformedTargetRegressor(make_pipeline(StandardScaler(), mlp()))
    with pytest.raises(TypeError, match="is a Pipeline ending in a "
                                        "MLPClassifierTorch"):
        sknn.save(classifier.fit(Xd, yd), path)
    quantiles = TransformedTargetRegressor(
        reg(), transformer=QuantileTransformer(n_quantiles=10)).fit(X, y)
    with pytest.raises(TypeError, match="transformer is None or one of .*; "
                                        "model/transformer_ is a QuantileTransformer"):
        sknn.save(quantiles, path)
    nested = TransformedTargetRegressor(make_pipeline(
        make_pipeline(StandardScaler()), reg())).fit(X, y)
    with pytest.raises(TypeError, match="nested in another"):
        sknn.save(nested, path)
    # a Pipeline that could not be fitted so, its steps fitted one by one
    middle = Pipeline([("ttr", TransformedTargetRegressor(reg()).fit(X, y)),
                       ("reg", reg().fit(X, y))])
    with pytest.raises(TypeError, match="as the whole model or as a Pipeline's "
                                        "last step, not at model/steps/0"):
        sknn.save(middle, path)
    assert not path.exists()


def _ttr(doc):
    return doc["model"]


def _swap_class(node, name, params):
    node["__object__"], node["params"] = name, params


@pytest.mark.parametrize("edit, message", [
    (lambda doc: _ttr(doc).__setitem__("regressor_", _ttr(doc)["transformer_"]),
     r"regressor is StandardScaler\(\), not an MLPRegressorTorch or a Pipeline "
     "ending in one"),
    (lambda doc: _ttr(doc)["regressor_"]["steps"][1][1].__setitem__(
        "__object__", "sklearn.linear_model.LinearRegression"),
     "names the class 'sklearn.linear_model.LinearRegression', which the safe "
     "format does not load"),
    (lambda doc: _swap_class(_ttr(doc)["regressor"]["steps"][1][1],
                             "sknn.MLPClassifierTorch", {}),
     "not an MLPRegressorTorch or a Pipeline ending in one"),
    (lambda doc: _ttr(doc).__setitem__("regressor_", copy.deepcopy(_ttr(doc))),
     "nests a sklearn.compose.TransformedTargetRegressor where the format holds "
     "none"),
    (lambda doc: _ttr(doc)["regressor_"]["steps"][0].__setitem__(
        1, copy.deepcopy(_ttr(doc)["regressor_"])),
     "nests a sklearn.pipeline.Pipeline where the format holds none"),
    (lambda doc: doc.__setitem__("model", {
        "__object__": "sklearn.pipeline.Pipeline",
        "params": {"memory": None, "transform_input": None, "verbose": False},
        "steps": [["ttr", _ttr(doc)], ["scaler", _ttr(doc)["transformer_"]]]}),
     "nests a sklearn.compose.TransformedTargetRegressor"),
    (lambda doc: _ttr(doc)["params"].__setitem__("regressor", None),
     "regressor is not among its parameters but in an entry of its own"),
    (lambda doc: _ttr(doc)["attributes"].__setitem__("_training_dim", 3),
     "its target has 3 dimensions"),
    (lambda doc: _ttr(doc)["attributes"].__setitem__("regressor_", 1),
     "TransformedTargetRegressor cannot have an attribute 'regressor_'"),
    (lambda doc: _ttr(doc)["transformer"].__setitem__("attributes", {}),
     "given as a parameter holds more than its class and parameters"),
    (lambda doc: _ttr(doc)["transformer_"].__setitem__(
        "__object__", "sknn.TargetEncoder"),
     "transformer is 'sknn.TargetEncoder', not one of FunctionTransformer, "
     "MaxAbsScaler"),
    (lambda doc: _swap_class(_ttr(doc)["transformer_"],
                             "sklearn.preprocessing.MaxAbsScaler",
                             {"copy": True, "clip": False}),
     "its transformer_ is not what its transformer or func and inverse_func "
     "make"),
], ids=["regressor-is-a-scaler", "regressor-of-another-class",
        "classifier-as-regressor", "target-regressor-in-itself",
        "pipeline-in-its-pipeline", "target-regressor-not-last",
        "regressor-among-parameters", "three-dimensional-target",
        "attribute-in-place-of-regressor_", "fitted-template",
        "label-encoder-as-transformer", "transformer_-of-another-class"])
def test_tampered_target_regressor_is_refused(target_model, path, edit, message):
    sknn.save(target_model, path)
    rewrite(path, lambda t: edit_document(t, edit))
    with pytest.raises(SafeFormatError, match=message):
        sknn.load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda doc: _ttr(doc)["params"].__setitem__("func", "eval"),
     "TransformedTargetRegressor's 'func' names 'eval', not one of the functions "
     "a file may name"),
    (lambda doc: _ttr(doc)["params"].__setitem__("inverse_func", "numpy.exp"),
     "'inverse_func' names 'numpy.exp'"),
    (lambda doc: _ttr(doc)["transformer_"]["params"].__setitem__("func", "exec"),
     "FunctionTransformer's 'func' names 'exec'"),
    (lambda doc: _ttr(doc)["transformer_"]["params"].__setitem__(
        "func", {"__tuple__": ["os", "system"]}),
     "FunctionTransformer's 'func' names \\('os', 'system'\\)"),
    (lambda doc: _ttr(doc)["transformer_"]["params"].__setitem__("func", "log"),
     "its transformer_ is not what its transformer or func and inverse_func "
     "make"),
    (lambda doc: _ttr(doc)["transformer_"]["params"].__setitem__(
        "inv_kw_args", {"dtype": "float32"}),
     "'inv_kw_args' must be None in an sknn safe file"),
], ids=["eval", "dotted-name", "exec-in-transformer_", "tuple-name",
        "transformer_-with-another-function", "keyword-arguments"])
def test_a_file_names_no_function_outside_the_table(diabetes, path, edit,
                                                    message):
    X, y = diabetes
    model = TransformedTargetRegressor(reg(), func=np.log1p,
                                       inverse_func=np.expm1).fit(X, y)
    sknn.save(model, path)
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("sknn.json"))
    assert _ttr(document)["params"]["func"] == "log1p"
    assert _ttr(document)["transformer_"]["params"]["inverse_func"] == "expm1"
    rewrite(path, lambda t: edit_document(t, edit))
    with pytest.raises(SafeFormatError, match=message):
        sknn.load(path)
