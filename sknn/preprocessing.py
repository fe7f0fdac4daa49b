"""Transformers that make a saved Pipeline the whole recipe for image data.

:class:`PixelScaler` is the first step of the Pipelines ``sknn train`` saves
for images: it turns images as :mod:`sknn.datasets` returns them into the
float32 rows in [0, 1] the rest of the Pipeline was fitted on, and says in one
warning when new images differ clearly from the training images (size, colour
mode, polarity, value range).
"""

import warnings
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

# scikit-learn keeps its constraint objects private (sknn._compat imports
# them); a hand-written check would word its errors differently from every
# other parameter error
from sknn._compat import Interval, _fit_context
from sknn._targets import TargetEncoder

__all__ = ["PixelScaler", "TargetEncoder"]

#: images whose median pixel is at least this (on the [0, 1] scale) have a
#: light background
_LIGHT = 0.5
#: share of the images that decides a background, and that counts as a change
_MAJORITY = 0.8
#: mean absolute difference between colour channels below which an image is gray
_GRAY_SPREAD = 0.01
#: the statistics are computed on at most this many images
_SAMPLE = 1000


def _describe_size(shape):
    height, width, channels = shape
    mode = "grayscale" if channels == 1 else f"{channels}-channel"
    return f"{height}x{width} {mode}"


class PixelScaler(TransformerMixin, BaseEstimator):
    """Flatten images to rows and divide their pixel values by ``max_value``.

    The first step of an image Pipeline: it takes images in the layouts
    :mod:`sknn.datasets` and the Keras tutorials use and returns float32 rows
    in [0, 1], ``X.reshape(n_samples, -1) / max_value``, which a
    :class:`~sklearn.preprocessing.StandardScaler` and an sknn classifier take.
    Keeping this step in the Pipeline makes a saved model take raw pixels
    (``joblib.load(path).predict(images)``) with no scaling left to remember.

    It also records a few statistics of the training images, and
    :meth:`transform` warns (one line, ``UserWarning``) when new images differ
    clearly from them:

    - the image size (same number of values, another shape),
    - the value range (pixels already in [0, 1] while ``max_value`` is 255,
      or values above ``max_value``),
    - the polarity (trained on light-on-dark digits, given dark-on-light ones),
    - the colour mode (trained on colour images, given gray ones, or the
      reverse).

    Parameters
    ----------
    max_value : float, default=255.0
        The value of a white pixel in the input: 255 for 8-bit images (MNIST,
        PNG, JPEG), 16 for scikit-learn's digits, 1.0 for images already in
        [0, 1] such as :func:`~sknn.datasets.load_image_folder` returns.

    Attributes
    ----------
    n_features_in_ : int
        Number of values per image (``height * width * channels``): the width
        of the rows :meth:`transform` returns.

    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of the columns when X was a DataFrame of flat rows with string
        column names.

    image_shape_ : tuple of int or None
        ``(height, width, channels)`` of the training images; None when they
        were given as flat rows.

    color_mode_ : {'grayscale', 'color'} or None
        'grayscale' for one channel or channels that are equal, 'color'
        otherwise; None for flat rows.

    background_ : {'dark', 'light', 'mixed'}
        'dark' when most training images have a dark background (their median
        pixel is below half of ``max_value``), as MNIST and the digits do,
        'light' when most have a light one, 'mixed' otherwise.

    mean_ : float
        Mean pixel value of the training images on the [0, 1] scale.

    value_range_ : tuple of float
        ``(min, max)`` of the training pixels on the [0, 1] scale.

    See Also
    --------
    sklearn.preprocessing.FunctionTransformer : A stateless function as a step.
    sklearn.preprocessing.MinMaxScaler : Scales each feature by its own range.

    Notes
    -----
    ``transform`` accepts any of the layouts ``fit`` accepts, as long as an
    image holds ``n_features_in_`` values: 4-D ``(n, height, width,
    channels)``, 3-D grayscale ``(n, height, width)`` or 2-D flat rows. A
    2-D array is always read as rows, so a single image needs a leading axis
    (``image[None]``). The statistics come from at most the first 1,000 images.

    Examples
    --------
    >>> import numpy as np
    >>> from sknn.preprocessing import PixelScaler
    >>> images = np.zeros((2, 8, 8), dtype=np.uint8)
    >>> images[:, 2:6, 3:5] = 255
    >>> scaler = PixelScaler().fit(images)
    >>> scaler.image_shape_, scaler.background_
    ((8, 8, 1), 'dark')
    >>> rows = scaler.transform(images)
    >>> rows.shape, rows.dtype, float(rows.max())
    ((2, 64), dtype('float32'), 1.0)
    """

    _parameter_constraints: dict = {
        "max_value": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, max_value=255.0):
        self.max_value = max_value

    # ------------------------------------------------------------------ layout
    def _rows(self, X, reset):
        """X as 2-D rows (validated, float32) and the image shape it came in."""
        if not hasattr(X, "shape"):  # lists and other array-likes
            X = np.asarray(X)
        shape = X.shape
        image = None
        if len(shape) in (3, 4):
            X = np.asarray(X)
            if X.ndim == 3:
                X = X[..., np.newaxis]
            image = tuple(int(s) for s in X.shape[1:])
            if not reset:
                self._check_size(image)
            X = X.reshape(len(X), -1)
        elif len(shape) > 4:
            raise ValueError(
                f"PixelScaler takes images (n, height, width[, channels]) or flat "
                f"rows (n, n_features); got an array of shape {tuple(shape)}.")
        elif len(shape) == 2 and not reset and self.image_shape_ is not None:
            if shape[1] != self.n_features_in_:
                hint = (" A single image needs a leading axis: image[None]."
                        if (shape[0], shape[1], 1) == self.image_shape_[:2] + (1,)
                        or tuple(shape) == self.image_shape_[:2] else "")
                raise ValueError(
                    f"X has {shape[1]} features, but PixelScaler is expecting "
                    f"{self.n_features_in_} features as input (it was fitted on "
                    f"{_describe_size(self.image_shape_)} images).{hint}")
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=reset)
        return X, image

    def _check_size(self, image):
        expected = self.image_shape_
        if expected is None:
            return
        n_values = int(np.prod(image))
        if n_values != self.n_features_in_:
            raise ValueError(
                f"PixelScaler was fitted on {_describe_size(expected)} images "
                f"({self.n_features_in_} values each); got "
                f"{_describe_size(image)} images ({n_values} values). Resize them "
                f"to {_describe_size(expected)}.")

    # ------------------------------------------------------------- statistics
    def _scaled_sample(self, X):
        return np.asarray(X[:_SAMPLE], dtype=np.float64) / float(self.max_value)

    @staticmethod
    def _light_share(scaled):
        if scaled.shape[1] == 0:
            return 0.0
        return float(np.mean(np.median(scaled, axis=1) >= _LIGHT))

    @staticmethod
    def _channel_spread(scaled, image):
        """Mean absolute difference between the channels of each image."""
        channels = image[2]
        if channels == 1:
            return np.zeros(len(scaled))
        pixels = scaled.reshape(len(scaled), -1, channels)
        return np.abs(pixels - pixels.mean(axis=2, keepdims=True)).mean(axis=(1, 2))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Record the image layout and statistics of the training images.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width, channels), \
(n_samples, height, width) or (n_samples, n_features)
            Training images with pixel values in [0, ``max_value``].
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted transformer.
        """
        X, image = self._rows(X, reset=True)
        self.image_shape_ = image
        scaled = self._scaled_sample(X)
        self.mean_ = float(scaled.mean())
        self.value_range_ = (float(scaled.min()), float(scaled.max()))
        light = self._light_share(scaled)
        self.background_ = ("light" if light >= _MAJORITY
                            else "dark" if light <= 1 - _MAJORITY else "mixed")
        if image is None:
            self.color_mode_ = None
        else:
            gray = np.mean(self._channel_spread(scaled, image) < _GRAY_SPREAD)
            self.color_mode_ = "grayscale" if gray >= 0.5 else "color"
        return self

    def transform(self, X):
        """Flat float32 rows ``X.reshape(n_samples, -1) / max_value``.

        Parameters
        ----------
        X : array-like of shape (n_samples, height, width, channels), \
(n_samples, height, width) or (n_samples, n_features)
            Images of the size seen in :meth:`fit`, in any of its layouts.

        Returns
        -------
        X_rows : ndarray of shape (n_samples, n_features_in_), dtype float32
            The pixel values divided by ``max_value``.

        Warns
        -----
        UserWarning
            In one line, when the images differ clearly from the training
            images: another image shape with as many values, values already
            in [0, 1] or above ``max_value``, the other polarity (dark-on-light
            instead of light-on-dark), or another colour mode.

        Raises
        ------
        ValueError
            If the images hold another number of values than the training
            images (the message names the size expected).
        """
        check_is_fitted(self)
        X, image = self._rows(X, reset=False)
        problems = self._mismatches(X, image)
        if problems:
            warnings.warn(f"{self._trained_on()}; {'; '.join(problems)}.",
                          UserWarning, stacklevel=3)
        rows = np.asarray(X, dtype=np.float32) / np.float32(self.max_value)
        return rows.astype(np.float32, copy=False)

    # ----------------------------------------------------------------- checks
    def _trained_on(self):
        polarity = {"dark": "light-on-dark ", "light": "dark-on-light "}.get(
            self.background_, "")
        if self.image_shape_ is None:
            return (f"PixelScaler was trained on {polarity}rows of "
                    f"{self.n_features_in_} values in [0, {self.max_value:g}]")
        height, width, channels = self.image_shape_
        mode = ("colour " if self.color_mode_ == "color" else
                "grayscale " if channels == 1 else "gray ")
        return (f"PixelScaler was trained on {height}x{width} {polarity}{mode}"
                f"images with values in [0, {self.max_value:g}]")

    def _mismatches(self, X, image):
        """What differs clearly from the training images, as short phrases."""
        n = len(X)
        these = "this image is" if n == 1 else "these images are"
        their = "its" if n == 1 else "their"
        max_value = float(self.max_value)
        problems = []
        if image is not None and self.image_shape_ is not None \
                and image != self.image_shape_:
            problems.append(f"{these} {_describe_size(image)}, with as many "
                            "values: check the layout")
        scaled = self._scaled_sample(X)
        low, high = float(scaled.min()), float(scaled.max())
        trained_low, trained_high = self.value_range_
        if max_value > 1 and 0 < high <= 1 / max_value < trained_high / 2:
            problems.append(f"{their} values are all within [0, 1], as if already "
                            f"scaled: pass raw pixels in [0, {max_value:g}]")
            return problems  # polarity and colour mean nothing on that scale
        if high > 1.0 + 1e-6 and high > 1.5 * trained_high:
            problems.append(f"{their} values go up to {high * max_value:g}, above "
                            f"max_value={max_value:g}: pass pixels on the "
                            "training scale")
            return problems
        if low < -1e-6 and trained_low >= 0:
            problems.append(f"{their} values go down to {low * max_value:g}, where "
                            "the training pixels were never negative")
            return problems
        light = self._light_share(scaled)
        polarity = (
            "dark-on-light" if self.background_ == "dark" and light > 0.5 else
            "light-on-dark" if self.background_ == "light" and light < 0.5 else
            None)
        if polarity is not None:
            invert = f"invert {'it' if n == 1 else 'them'} ({max_value:g} - X)"
            if n == 1:
                problems.append(f"{these} {polarity}: {invert}")
            else:
                m = len(scaled)
                count = round((light if polarity == "dark-on-light" else 1 - light)
                              * m)
                problems.append(f"{count} of {m} images are {polarity}: {invert}")
        layout = image if image is not None else self.image_shape_
        if self.color_mode_ is not None and layout is not None and layout[2] > 1:
            gray = float(np.mean(self._channel_spread(scaled, layout) < _GRAY_SPREAD))
            if self.color_mode_ == "color" and gray >= _MAJORITY:
                problems.append(f"{these} gray (equal channels)")
            elif self.color_mode_ == "grayscale" and gray <= 1 - _MAJORITY:
                problems.append(f"{these} in colour")
        return problems

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags
