"""Training-time augmentation: Keras key names and meaning, batched, seeded,
applied to training batches only."""

import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from sknn import CNNClassifier
from sknn._augment import AUGMENT_DEFAULTS, ImageAugmenter

#: the augmentation the tutorials pass to Keras' ImageDataGenerator
TUTORIAL_AUGMENT = dict(rotation_range=30, width_shift_range=0.1,
                        height_shift_range=0.1, shear_range=0.2, zoom_range=0.2,
                        horizontal_flip=True)


#: tiny convolutions run faster on one thread on a shared 2-core machine
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digit_images():
    X, y = load_digits(return_X_y=True)
    return X[:200].reshape(-1, 8, 8) / 16.0, y[:200]


def tiny(**params):
    defaults = dict(conv_filters=(4,), dense_layer_sizes=(8,), max_iter=2,
                    random_state=0, device="cpu")
    return CNNClassifier(**{**defaults, **params})


def disk(height, width, radius):
    """(1, 1, height, width) image of a centred disk of ``radius`` pixels."""
    rows = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    cols = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    inside = rows[:, None] ** 2 + cols[None, :] ** 2 <= radius ** 2
    return inside.float()[None, None]


def blob(height, width, sigma=3.0):
    """(1, 1, height, width) image of a centred round Gaussian blob."""
    rows = torch.arange(height, dtype=torch.float32) - (height - 1) / 2
    cols = torch.arange(width, dtype=torch.float32) - (width - 1) / 2
    r2 = rows[:, None] ** 2 + cols[None, :] ** 2
    return torch.exp(-r2 / (2 * sigma ** 2))[None, None]


# --------------------------------------------------------------- the dict
def test_unknown_key_lists_the_accepted_keys_and_suggests_one():
    with pytest.raises(ValueError, match=r"Unknown augment key\(s\) \['rotation'\]"
                       r".*'horizontal_flip'.*Did you mean 'rotation_range'"):
        ImageAugmenter.from_dict({"rotation": 30})


def test_unknown_key_is_an_error_at_fit(digit_images):
    X, y = digit_images
    with pytest.raises(ValueError, match="accepted keys"):
        tiny(augment={"brightness_range": (0.5, 1.5)}).fit(X, y)


@pytest.mark.parametrize("augment, match", [
    ({"rotation_range": -5}, r"augment\['rotation_range'\] must be a number >= 0"),
    ({"width_shift_range": "0.1"}, r"augment\['width_shift_range'\] must be"),
    ({"zoom_range": 1.5}, r"augment\['zoom_range'\] must be a float in \[0, 1\)"),
    ({"zoom_range": (1.2, 0.8)}, r"0 < lower <= upper"),
    ({"horizontal_flip": 1}, r"augment\['horizontal_flip'\] must be True or False"),
    ({"fill_mode": "wrap"}, r"augment\['fill_mode'\] must be one of"),
])
def test_invalid_values_are_clear_errors(augment, match):
    with pytest.raises(ValueError, match=match):
        ImageAugmenter.from_dict(augment)


def test_the_tutorial_keys_are_accepted():
    augmenter = ImageAugmenter.from_dict(TUTORIAL_AUGMENT)
    assert augmenter.zoom_range == (0.8, 1.2)
    assert not augmenter.is_identity()
    assert set(TUTORIAL_AUGMENT) | {"vertical_flip"} <= set(AUGMENT_DEFAULTS)


def test_empty_dict_means_no_augmentation(digit_images):
    X, y = digit_images
    clf = tiny(augment={}).fit(X, y)
    assert clf.net_.iterator_train__transform is None
    x = torch.rand(3, 1, 5, 5)
    assert ImageAugmenter.from_dict({})(x) is x


# ------------------------------------------------------------ transforms
def test_one_call_transforms_each_image_of_the_batch_differently():
    x = torch.rand(1, 2, 9, 7).repeat(16, 1, 1, 1)
    torch.manual_seed(0)
    out = ImageAugmenter.from_dict(TUTORIAL_AUGMENT)(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    flat = out.reshape(16, -1)
    assert torch.cdist(flat, flat).triu(1)[torch.triu(
        torch.ones(16, 16, dtype=torch.bool), 1)].min() > 0


def test_same_seed_same_batch_other_seed_other_batch():
    x = torch.rand(8, 1, 10, 10)
    augmenter = ImageAugmenter.from_dict(TUTORIAL_AUGMENT)
    torch.manual_seed(1)
    first = augmenter(x)
    torch.manual_seed(1)
    again = augmenter(x)
    torch.manual_seed(2)
    other = augmenter(x)
    assert torch.equal(first, again)
    assert not torch.allclose(first, other)


def test_horizontal_flip_mirrors_about_half_of_the_images_exactly():
    x = torch.rand(200, 3, 6, 5)
    torch.manual_seed(0)
    out = ImageAugmenter.from_dict({"horizontal_flip": True})(x)
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    mirrored = torch.isclose(out, x.flip(-1), atol=1e-5).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 60 < int(mirrored.sum()) < 140


def test_vertical_flip_mirrors_up_down():
    x = torch.rand(100, 1, 4, 6)
    torch.manual_seed(0)
    out = ImageAugmenter.from_dict({"vertical_flip": True})(x)
    mirrored = torch.isclose(out, x.flip(-2), atol=1e-5).flatten(1).all(1)
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 100


@pytest.mark.parametrize("height, width", [(21, 21), (15, 31)])
def test_rotation_turns_about_the_centre_without_distortion(height, width):
    # a round blob is unchanged by any rotation about the centre, also on a
    # non-square image, when rotations are composed in pixel units (rotating
    # the [-1, 1] grid coordinates instead would squash it: error ~0.48)
    x = blob(height, width).repeat(32, 1, 1, 1)
    augmenter = ImageAugmenter.from_dict({"rotation_range": 180,
                                          "fill_mode": "constant"})
    torch.manual_seed(0)
    out = augmenter(x)
    assert float((out - x).abs().max()) < 0.05
    # while an off-centre one moves
    off = torch.roll(x, shifts=5, dims=-1)
    moved = augmenter(off)
    assert float((moved - off).abs().max()) > 0.3


def test_width_shift_is_a_fraction_of_the_width_below_1_and_pixels_from_1():
    x = torch.zeros(64, 1, 8, 40)
    x[..., 20] = 1.0  # one bright column
    for shift_range, max_pixels in [(0.1, 4.0), (2.0, 2.0)]:
        torch.manual_seed(0)
        out = ImageAugmenter.from_dict({"width_shift_range": shift_range,
                                        "fill_mode": "constant"})(x)
        cols = torch.arange(40, dtype=torch.float32)
        centre = (out.sum(dim=(1, 2)) * cols).sum(1) / out.sum(dim=(1, 2, 3))
        moved = (centre - 20).abs()
        assert float(moved.max()) <= max_pixels + 1e-4
        assert float(moved.max()) > 0.5 * max_pixels
        # rows are untouched: the column stays a full column
        assert torch.allclose(out.sum(dim=-1), torch.ones(64, 1, 8), atol=1e-4)


def test_zoom_above_1_shrinks_the_content_as_in_keras():
    x = disk(32, 32, radius=8).repeat(4, 1, 1, 1)
    area = float(x[0].sum())
    out = ImageAugmenter.from_dict({"zoom_range": (2.0, 2.0),
                                    "fill_mode": "constant"})(x)
    assert float(out[0].sum()) == pytest.approx(area / 4, rel=0.15)
    out = ImageAugmenter.from_dict({"zoom_range": (0.5, 0.5),
                                    "fill_mode": "constant"})(x)
    assert float(out[0].sum()) == pytest.approx(area * 4, rel=0.15)


def test_constant_fill_uses_cval():
    x = torch.zeros(4, 1, 10, 10)
    torch.manual_seed(0)
    out = ImageAugmenter.from_dict({"width_shift_range": 0.4,
                                    "fill_mode": "constant", "cval": 0.5})(x)
    assert float(out.max()) == pytest.approx(0.5)
    out = ImageAugmenter.from_dict({"width_shift_range": 0.4})(x)  # nearest
    assert float(out.abs().max()) == 0.0


def test_augmenter_pickles_with_its_parameters():
    augmenter = ImageAugmenter.from_dict(TUTORIAL_AUGMENT)
    copy = pickle.loads(pickle.dumps(augmenter))
    x = torch.rand(4, 1, 8, 8)
    torch.manual_seed(0)
    expected = augmenter(x)
    torch.manual_seed(0)
    assert torch.equal(copy(x), expected)
    assert "rotation_range=30.0" in repr(copy)


# ------------------------------------------------------ in the estimator
def test_training_with_augmentation_is_reproducible_from_random_state(
        digit_images):
    X, y = digit_images
    fits = [tiny(augment=TUTORIAL_AUGMENT, random_state=seed).fit(X, y)
            for seed in (0, 0, 1)]
    plain = tiny(random_state=0).fit(X, y)
    probas = [clf.predict_proba(X) for clf in fits]
    np.testing.assert_array_equal(probas[0], probas[1])
    assert not np.allclose(probas[0], probas[2])
    assert not np.allclose(probas[0], plain.predict_proba(X))
    assert isinstance(fits[0].net_.iterator_train__transform, ImageAugmenter)


def test_fit_leaves_torch_global_rng_as_it_was(digit_images):
    X, y = digit_images
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny(augment=TUTORIAL_AUGMENT).fit(X, y)
    assert torch.equal(torch.rand(3), expected)


def test_prediction_never_augments(digit_images):
    X, y = digit_images
    clf = tiny(augment=TUTORIAL_AUGMENT).fit(X, y)
    first = clf.predict_proba(X)
    np.testing.assert_array_equal(clf.predict_proba(X), first)
    module = clf.net_.module_.eval()
    with torch.no_grad():
        logits = module(torch.as_tensor(X, dtype=torch.float32)[:, None])
    np.testing.assert_allclose(first, torch.softmax(logits, 1).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_early_stopping_validation_batches_are_not_augmented(digit_images):
    X, y = digit_images
    calls = []

    class Counting(ImageAugmenter):
        def __call__(self, batch):
            calls.append(len(batch))
            return super().__call__(batch)

    clf = tiny(augment={"rotation_range": 10}, early_stopping=True,
               validation_fraction=0.2, batch_size=40)
    clf._batch_transform = lambda: Counting.from_dict(clf.augment)
    clf.fit(X, y)
    # 160 training images a epoch in batches of 40, for 2 epochs; none of the 40
    # validation images
    assert sum(calls) == 2 * 160


def test_augmented_batch_keeps_the_input_memory_layout():
    # CNNClassifier feeds channels_last batches on the CPU; the augmenter must
    # not turn them back into NCHW-contiguous memory
    x = torch.rand(6, 9, 7, 3).permute(0, 3, 1, 2)  # NHWC memory, NCHW shape
    torch.manual_seed(0)
    out = ImageAugmenter.from_dict(TUTORIAL_AUGMENT)(x)
    assert out.stride() == x.stride()
    torch.manual_seed(0)
    assert torch.equal(out, ImageAugmenter.from_dict(TUTORIAL_AUGMENT)(
        x.contiguous()))
