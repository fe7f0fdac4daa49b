"""Training-time image augmentation on batches of tensors.

The ``augment`` dict of :class:`~sknn.CNNClassifier` uses the key names and the
meaning of Keras' ``ImageDataGenerator``. Every random transform of a batch
(rotation, shifts, shear, zoom, flips) is folded into one 2x3 affine matrix per
image, and the whole batch is resampled by a single
``affine_grid``/``grid_sample`` call: no per-image Python loop, on whatever
device the batch lives on. The random draws come from torch's global RNG, which
the estimator seeds from ``random_state`` inside a forked RNG during ``fit``.
"""

import difflib
from numbers import Real

import torch
from torch.nn import functional as F

#: fill_mode (Keras name) -> grid_sample padding_mode
FILL_MODES = {"nearest": "border", "constant": "zeros", "reflect": "reflection"}

#: the accepted keys of ``augment`` and their defaults (no augmentation)
AUGMENT_DEFAULTS = {
    "rotation_range": 0.0,
    "width_shift_range": 0.0,
    "height_shift_range": 0.0,
    "shear_range": 0.0,
    "zoom_range": 0.0,
    "horizontal_flip": False,
    "vertical_flip": False,
    "fill_mode": "nearest",
    "cval": 0.0,
}


def _bad_value(key, value, expected):
    return ValueError(
        f"augment[{key!r}] must be {expected}, got {value!r}.")


def _non_negative(key, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not value >= 0:
        raise _bad_value(key, value, "a number >= 0")
    return float(value)


def _zoom_bounds(value):
    """Keras' zoom_range: a float z means [1 - z, 1 + z]; a pair is [lower, upper]."""
    if isinstance(value, Real) and not isinstance(value, bool):
        if not 0 <= value < 1:
            raise _bad_value("zoom_range", value,
                             "a float in [0, 1) or a pair [lower, upper] of "
                             "positive floats")
        return 1.0 - float(value), 1.0 + float(value)
    try:
        lower, upper = (float(v) for v in value)
    except (TypeError, ValueError):
        raise _bad_value("zoom_range", value,
                         "a float in [0, 1) or a pair [lower, upper] of positive "
                         "floats") from None
    if not 0 < lower <= upper:
        raise _bad_value("zoom_range", value,
                         "a pair [lower, upper] with 0 < lower <= upper")
    return lower, upper


class ImageAugmenter:
    """Random affine transforms and flips of NCHW image batches.

    Build it from the ``augment`` dict with :meth:`from_dict`, which checks the
    keys and values. Calling it on a batch ``X`` of shape (N, C, H, W) returns a
    new batch of the same shape, every image transformed by its own random draw.

    Parameters
    ----------
    rotation_range : float
        Degrees; each image is rotated by an angle drawn from
        [-rotation_range, rotation_range].
    width_shift_range, height_shift_range : float
        Below 1, a fraction of the image width (height); from 1 on, pixels. The
        shift is drawn from [-range, range].
    shear_range : float
        Shear angle in degrees, drawn from [-shear_range, shear_range].
    zoom_range : (float, float)
        [lower, upper] of the zoom factors, drawn independently for width and
        height; as in Keras, a factor above 1 shows a larger region (the content
        shrinks).
    horizontal_flip, vertical_flip : bool
        Flip half of the images, at random, left-right (up-down).
    fill_mode : {'nearest', 'constant', 'reflect'}
        How points outside the image are filled.
    cval : float
        The fill value for fill_mode='constant'.
    """

    def __init__(self, rotation_range=0.0, width_shift_range=0.0,
                 height_shift_range=0.0, shear_range=0.0, zoom_range=(1.0, 1.0),
                 horizontal_flip=False, vertical_flip=False, fill_mode="nearest",
                 cval=0.0):
        self.rotation_range = rotation_range
        self.width_shift_range = width_shift_range
        self.height_shift_range = height_shift_range
        self.shear_range = shear_range
        self.zoom_range = zoom_range
        self.horizontal_flip = horizontal_flip
        self.vertical_flip = vertical_flip
        self.fill_mode = fill_mode
        self.cval = cval

    @classmethod
    def from_dict(cls, augment):
        """The augmenter for an ``augment`` dict of Keras ``ImageDataGenerator``
        keys; a ValueError names any unknown key or invalid value."""
        unknown = [key for key in augment if key not in AUGMENT_DEFAULTS]
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(str(key), AUGMENT_DEFAULTS, n=1)
                if close:
                    hints.append(f" Did you mean {close[0]!r} instead of {key!r}?")
            raise ValueError(
                f"Unknown augment key(s) {unknown}. The accepted keys (Keras "
                f"ImageDataGenerator names) are {sorted(AUGMENT_DEFAULTS)}."
                + "".join(hints)
            )
        params = {**AUGMENT_DEFAULTS, **augment}
        kwargs = {key: _non_negative(key, params[key]) for key in (
            "rotation_range", "width_shift_range", "height_shift_range",
            "shear_range")}
        kwargs["zoom_range"] = _zoom_bounds(params["zoom_range"])
        for key in ("horizontal_flip", "vertical_flip"):
            if not isinstance(params[key], bool):
                raise _bad_value(key, params[key], "True or False")
            kwargs[key] = params[key]
        if params["fill_mode"] not in FILL_MODES:
            raise _bad_value("fill_mode", params["fill_mode"],
                             f"one of {sorted(FILL_MODES)}")
        kwargs["fill_mode"] = params["fill_mode"]
        if isinstance(params["cval"], bool) or not isinstance(params["cval"], Real):
            raise _bad_value("cval", params["cval"], "a number")
        kwargs["cval"] = float(params["cval"])
        return cls(**kwargs)

    def is_identity(self):
        """True when no transform is switched on."""
        return not (self.rotation_range or self.width_shift_range
                    or self.height_shift_range or self.shear_range
                    or tuple(self.zoom_range) != (1.0, 1.0)
                    or self.horizontal_flip or self.vertical_flip)

    def _shift(self, value, size):
        # Keras: below 1 a fraction of the size, otherwise pixels
        return value * size if value < 1 else value

    def matrices(self, n, height, width):
        """(n, 2, 3) float32 random affine matrices in normalised coordinates.

        Each maps output coordinates to input coordinates, as ``affine_grid``
        expects. They are composed in centred pixel units, x along the width
        and y along the height, so that rotations of non-square images are not
        distorted, and then scaled to the [-1, 1] coordinates of ``grid_sample``.
        """
        def uniform(low, high):
            return torch.rand(n) * (high - low) + low

        theta = torch.deg2rad(uniform(-self.rotation_range, self.rotation_range))
        shear = torch.deg2rad(uniform(-self.shear_range, self.shear_range))
        dx = self._shift(self.width_shift_range, width)
        dy = self._shift(self.height_shift_range, height)
        tx, ty = uniform(-dx, dx), uniform(-dy, dy)
        zx = uniform(*self.zoom_range)
        zy = uniform(*self.zoom_range)
        fx = torch.ones(n)
        fy = torch.ones(n)
        if self.horizontal_flip:
            fx = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)
        if self.vertical_flip:
            fy = torch.where(torch.rand(n) < 0.5, -1.0, 1.0)

        # Keras' order: rotation @ shift @ shear @ zoom, then the flips
        cos, sin = torch.cos(theta), torch.sin(theta)
        rotation = _stack([[cos, -sin, 0 * cos], [sin, cos, 0 * cos]])
        shift = _stack([[1 + 0 * tx, 0 * tx, tx], [0 * tx, 1 + 0 * tx, ty]])
        shear_m = _stack([[1 + 0 * shear, -torch.sin(shear), 0 * shear],
                          [0 * shear, torch.cos(shear), 0 * shear]])
        zoom = _stack([[zx, 0 * zx, 0 * zx], [0 * zx, zy, 0 * zx]])
        flip = _stack([[fx, 0 * fx, 0 * fx], [0 * fx, fy, 0 * fx]])
        pixel = _compose(_compose(_compose(_compose(rotation, shift), shear_m),
                                  zoom), flip)
        # centred pixels -> normalised: x_norm = x / (W / 2), y_norm = y / (H / 2)
        scale = torch.tensor([width / 2.0, height / 2.0])
        normalised = pixel.clone()
        normalised[:, :, :2] = pixel[:, :, :2] * scale[None, None, :] / scale[
            None, :, None]
        normalised[:, :, 2] = pixel[:, :, 2] / scale[None, :]
        return normalised

    def __call__(self, X):
        if self.is_identity():
            return X
        n, _, height, width = X.shape
        theta = self.matrices(n, height, width).to(device=X.device, dtype=X.dtype)
        grid = F.affine_grid(theta, list(X.shape), align_corners=False)
        padding_mode = FILL_MODES[self.fill_mode]
        if padding_mode == "zeros" and self.cval:
            # grid_sample pads with 0: shift the values so the padding is cval
            out = F.grid_sample(X - self.cval, grid, mode="bilinear",
                                padding_mode="zeros", align_corners=False
                                ) + self.cval
        else:
            out = F.grid_sample(X, grid, mode="bilinear", padding_mode=padding_mode,
                                align_corners=False)
        # grid_sample returns NCHW-contiguous memory: give the batch back in the
        # input's layout (channels_last on the CPU), which the convolutions chose
        return torch.empty_like(X).copy_(out)

    def __repr__(self):
        changed = {key: getattr(self, key) for key in AUGMENT_DEFAULTS
                   if key != "zoom_range" and getattr(self, key)
                   != AUGMENT_DEFAULTS[key]}
        if tuple(self.zoom_range) != (1.0, 1.0):
            changed["zoom_range"] = tuple(self.zoom_range)
        args = ", ".join(f"{key}={value!r}" for key, value in changed.items())
        return f"ImageAugmenter({args})"


def _stack(rows):
    """(n, 2, 3) matrices from two rows of three length-n tensors."""
    return torch.stack([torch.stack(row, dim=1) for row in rows], dim=1)


def _compose(a, b):
    """The affine map ``x -> a(b(x))`` of two (n, 2, 3) affine matrices."""
    linear = a[:, :, :2] @ b[:, :, :2]
    offset = a[:, :, :2] @ b[:, :, 2:] + a[:, :, 2:]
    return torch.cat([linear, offset], dim=2)


__all__ = ["AUGMENT_DEFAULTS", "ImageAugmenter"]
