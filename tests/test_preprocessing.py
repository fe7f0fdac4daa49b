"""sknn.preprocessing.PixelScaler: scikit-learn's checks, layouts, scaling, the
one-line warnings about images that differ from the training images, and its
place in a saved Pipeline."""

import warnings

import joblib
import numpy as np
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sknn.preprocessing import PixelScaler


@parametrize_with_checks([PixelScaler(), PixelScaler(max_value=16.0)])
def test_sklearn_compatible_transformer(estimator, check):
    check(estimator)


def _no_warning(func, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return func(*args)


def _one_warning(func, *args):
    with pytest.warns(UserWarning) as record:
        result = func(*args)
    messages = [str(w.message) for w in record if w.category is UserWarning]
    assert len(messages) == 1, messages
    assert "\n" not in messages[0]
    return result, messages[0]


def test_fit_records_layout_and_statistics(digits_bunch):
    scaler = _no_warning(PixelScaler(max_value=16.0).fit, digits_bunch.images)
    assert scaler.n_features_in_ == 64
    assert scaler.image_shape_ == (8, 8, 1)
    assert scaler.background_ == "dark"
    assert scaler.color_mode_ == "grayscale"
    assert scaler.value_range_ == (0.0, 1.0)
    # the statistics come from the first 1,000 images
    assert scaler.mean_ == pytest.approx(digits_bunch.images[:1000].mean() / 16)
    # every fitted statistic is a plain Python value (pickle-free formats)
    for name in ("mean_", "value_range_", "background_", "color_mode_",
                 "image_shape_", "n_features_in_"):
        value = getattr(scaler, name)
        items = value if isinstance(value, tuple) else (value,)
        assert all(type(v) in (int, float, str) for v in items), (name, value)


def test_flat_rows_have_no_image_shape(digits_bunch):
    scaler = PixelScaler(16.0).fit(digits_bunch.data)
    assert scaler.image_shape_ is None and scaler.color_mode_ is None
    assert scaler.n_features_in_ == 64


@pytest.mark.parametrize("layout", ["images", "channels", "rows"])
def test_transform_takes_every_layout_and_divides(digits_bunch, layout):
    scaler = PixelScaler(16.0).fit(digits_bunch.images)
    images = digits_bunch.images[:7]
    X = {"images": images, "channels": images[:, :, :, None],
         "rows": digits_bunch.data[:7]}[layout]
    rows = _no_warning(scaler.transform, X)
    assert rows.dtype == np.float32 and rows.shape == (7, 64)
    np.testing.assert_allclose(rows, digits_bunch.data[:7] / 16, rtol=1e-6)


def test_uint8_images_are_divided_by_255():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, size=(5, 6, 6, 3), dtype=np.uint8)
    images[:, 2:4, 2:4] = 255
    rows = PixelScaler().fit_transform(images)
    np.testing.assert_allclose(rows, images.reshape(5, -1) / 255.0, rtol=1e-6)
    assert rows.dtype == np.float32


def test_other_image_size_is_an_error_naming_the_expected_size(digits_bunch):
    scaler = PixelScaler(16.0).fit(digits_bunch.images)
    with pytest.raises(ValueError, match=r"fitted on 8x8 grayscale images .*"
                                         r"got 28x28 grayscale images.*Resize"):
        scaler.transform(np.zeros((2, 28, 28)))
    with pytest.raises(ValueError, match="X has 784 features, but PixelScaler is "
                                         "expecting 64 features"):
        scaler.transform(np.zeros((2, 784)))
    with pytest.raises(ValueError, match=r"leading axis: image\[None\]"):
        scaler.transform(digits_bunch.images[0])


def test_dark_on_light_digit_warns_what_was_expected(digits_bunch):
    scaler = PixelScaler(16.0).fit(digits_bunch.images)
    _, message = _one_warning(scaler.transform, 16 - digits_bunch.images[:1])
    assert message.startswith("PixelScaler was trained on 8x8 light-on-dark ")
    assert "this image is dark-on-light" in message
    _, message = _one_warning(scaler.transform, 16 - digits_bunch.images[:10])
    assert "10 of 10 images are dark-on-light" in message
    # a light-background model warns the other way round
    light = PixelScaler(16.0).fit(16 - digits_bunch.images)
    assert light.background_ == "light"
    _, message = _one_warning(light.transform, digits_bunch.images[:3])
    assert "8x8 dark-on-light" in message
    assert "3 of 3 images are light-on-dark" in message


def test_values_already_in_unit_range_warn(digits_bunch):
    scaler = PixelScaler(16.0).fit(digits_bunch.images)
    _, message = _one_warning(scaler.transform, digits_bunch.images[:4] / 16)
    assert "within [0, 1], as if already scaled" in message
    assert "pass raw pixels in [0, 16]" in message


def test_values_above_max_value_warn(digits_bunch):
    scaler = PixelScaler(16.0).fit(digits_bunch.images)
    _, message = _one_warning(scaler.transform, digits_bunch.images[:4] * 255 / 16)
    assert "go up to 255" in message and "above max_value=16" in message


def test_same_values_other_shape_warns(digits_bunch):
    scaler = PixelScaler(16.0).fit(digits_bunch.images)
    rows, message = _one_warning(scaler.transform,
                                 digits_bunch.images[:3].reshape(3, 4, 16))
    assert "these images are 4x16 grayscale" in message
    assert rows.shape == (3, 64)


def test_colour_mode_change_warns():
    rng = np.random.default_rng(0)
    colour = rng.integers(0, 256, size=(30, 8, 8, 3), dtype=np.uint8)
    scaler = PixelScaler().fit(colour)
    assert scaler.color_mode_ == "color"
    gray = np.repeat(colour[..., :1], 3, axis=3)
    _, message = _one_warning(scaler.transform, gray)
    assert "trained on 8x8" in message and "colour images" in message
    assert "these images are gray" in message
    gray_model = PixelScaler().fit(gray)
    assert gray_model.color_mode_ == "grayscale"
    _, message = _one_warning(gray_model.transform, colour)
    assert "in colour" in message


def test_similar_images_do_not_warn(digits_bunch):
    scaler = PixelScaler(16.0).fit(digits_bunch.images[:1000])
    _no_warning(scaler.transform, digits_bunch.images[1000:])
    _no_warning(scaler.transform, digits_bunch.images[1000:1001])


def test_bad_max_value_is_a_parameter_error(digits_bunch):
    with pytest.raises(ValueError, match="'max_value' parameter of PixelScaler "
                                         "must be a float in the range"):
        PixelScaler(max_value=0).fit(digits_bunch.images)


def test_pipeline_with_pixel_scaler_round_trips_through_joblib(digits_bunch, tmp_path):
    from sknn import MLPClassifierTorch

    model = Pipeline([("pixels", PixelScaler(16.0)), ("scaler", StandardScaler()),
                      ("clf", MLPClassifierTorch(hidden_layer_sizes=(16,),
                                                 max_iter=3, random_state=0,
                                                 device="cpu"))])
    model.fit(digits_bunch.images[:300], digits_bunch.target[:300])
    joblib.dump(model, tmp_path / "m.joblib")
    loaded = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(loaded.predict(digits_bunch.images[300:400]),
                                  model.predict(digits_bunch.data[300:400]))
    # the saved Pipeline takes raw pixels: scaling by hand first is caught
    with pytest.warns(UserWarning, match="as if already scaled"):
        loaded.predict(digits_bunch.images[300:310] / 16)
