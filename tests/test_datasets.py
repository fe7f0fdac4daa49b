"""sknn.datasets: MNIST from npz / IDX folders and image folders, on tiny files
written to tmp_path (never downloaded)."""

import gzip
import struct

import numpy as np
import pytest

from sknn.datasets import load_image_folder, load_mnist, read_idx

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402


def _idx_bytes(array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += b"".join(struct.pack(">I", n) for n in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_idx(path, array, gz):
    data = _idx_bytes(array)
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _fake_mnist(rng, n):
    return (rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, size=n, dtype=np.uint8))


@pytest.fixture
def mnist_arrays():
    rng = np.random.default_rng(0)
    return _fake_mnist(rng, 6), _fake_mnist(rng, 4)


def _write_folder(folder, arrays, gz, train=True):
    (X_train, y_train), (X_test, y_test) = arrays
    if train:
        _write_idx(folder / "train-images-idx3-ubyte", X_train, gz)
        _write_idx(folder / "train-labels-idx1-ubyte", y_train, gz)
    _write_idx(folder / "t10k-images-idx3-ubyte", X_test, gz)
    _write_idx(folder / "t10k-labels-idx1-ubyte", y_test, gz)


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_idx_folder_round_trips(tmp_path, mnist_arrays, gz):
    _write_folder(tmp_path, mnist_arrays, gz)
    loaded = load_mnist(tmp_path)
    for got_pair, want_pair in zip(loaded, mnist_arrays):
        for got, want in zip(got_pair, want_pair):
            assert got.dtype == np.uint8
            np.testing.assert_array_equal(got, want)


def test_load_mnist_test_only_folder_gives_empty_train(tmp_path, mnist_arrays):
    _write_folder(tmp_path, mnist_arrays, gz=True, train=False)
    (X_train, y_train), (X_test, y_test) = load_mnist(str(tmp_path))
    assert X_train.shape == (0, 28, 28) and X_train.dtype == np.uint8
    assert y_train.shape == (0,) and y_train.dtype == np.uint8
    np.testing.assert_array_equal(X_test, mnist_arrays[1][0])
    np.testing.assert_array_equal(y_test, mnist_arrays[1][1])


def test_load_mnist_npz_round_trips(tmp_path, mnist_arrays):
    (X_train, y_train), (X_test, y_test) = mnist_arrays
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=X_train, y_train=y_train, x_test=X_test, y_test=y_test)
    (a, b), (c, d) = load_mnist(path)
    np.testing.assert_array_equal(a, X_train)
    np.testing.assert_array_equal(b, y_train)
    np.testing.assert_array_equal(c, X_test)
    np.testing.assert_array_equal(d, y_test)


def test_load_mnist_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nope.npz")


def test_load_mnist_folder_names_missing_files(tmp_path, mnist_arrays):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", mnist_arrays[1][0], gz=True)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_folder_with_one_train_file_is_an_error(tmp_path, mnist_arrays):
    _write_folder(tmp_path, mnist_arrays, gz=False, train=False)
    _write_idx(tmp_path / "train-images-idx3-ubyte", mnist_arrays[0][0], gz=False)
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_npz_missing_arrays(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="y_train"):
        load_mnist(path)


def test_load_mnist_not_an_npz(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_mnist(path)


def test_load_mnist_mismatched_counts(tmp_path, mnist_arrays):
    (_, _), (X_test, y_test) = mnist_arrays
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", X_test, gz=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", y_test[:-1], gz=False)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        load_mnist(tmp_path)


def test_read_idx_rejects_garbage_and_truncation(tmp_path, mnist_arrays):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="magic number"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(_idx_bytes(mnist_arrays[1][0])[:-5])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(short)


def test_load_mnist_real_test_set(mnist_dir):
    (X_train, _), (X_test, y_test) = load_mnist(mnist_dir)
    assert X_test.shape == (10000, 28, 28) and X_test.dtype == np.uint8
    assert set(np.unique(y_test)) == set(range(10))
    assert X_train.shape[1:] == (28, 28)


# ---------------------------------------------------------------- image folder
def _make_image_folder(root, per_class=2, size=(10, 12)):
    colours = {"cat": (255, 0, 0), "dog": (0, 255, 0), "bird": (0, 0, 255)}
    for name, colour in colours.items():
        (root / name).mkdir(parents=True)
        for i, ext in zip(range(per_class), ["png", "JPG", "bmp", "jpeg"]):
            Image.new("RGB", size, colour).save(root / name / f"img{i}.{ext}")
    (root / "cat" / "notes.txt").write_text("not an image")
    return colours


def test_load_image_folder_shapes_order_and_values(tmp_path):
    colours = _make_image_folder(tmp_path)
    X, y = load_image_folder(tmp_path, size=(8, 6))
    assert X.shape == (6, 8, 6, 3) and X.dtype == np.float32
    assert list(y) == ["bird", "bird", "cat", "cat", "dog", "dog"]
    assert 0.0 <= X.min() and X.max() <= 1.0
    # the bird images are pure blue (PNG: exact; JPEG may blur the values)
    np.testing.assert_allclose(X[0].mean(axis=(0, 1)),
                               np.array(colours["bird"]) / 255, atol=0.02)


def test_load_image_folder_is_deterministic(tmp_path):
    _make_image_folder(tmp_path)
    X1, y1 = load_image_folder(tmp_path)
    X2, y2 = load_image_folder(tmp_path)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


def test_load_image_folder_flatten_and_grayscale(tmp_path):
    _make_image_folder(tmp_path)
    X, _ = load_image_folder(tmp_path, size=(4, 5), flatten=True)
    assert X.shape == (6, 4 * 5 * 3)
    G, _ = load_image_folder(tmp_path, size=(4, 5), grayscale=True)
    assert G.shape == (6, 4, 5, 1)


def test_load_image_folder_names_unreadable_file(tmp_path):
    _make_image_folder(tmp_path)
    broken = tmp_path / "dog" / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="broken.png"):
        load_image_folder(tmp_path)
    with pytest.warns(UserWarning, match="broken.png"):
        X, y = load_image_folder(tmp_path, on_error="warn")
    assert len(X) == len(y) == 6


def test_load_image_folder_empty_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        load_image_folder(tmp_path)


def test_load_image_folder_bad_options(tmp_path):
    _make_image_folder(tmp_path)
    with pytest.raises(ValueError, match="on_error"):
        load_image_folder(tmp_path, on_error="ignore")
    with pytest.raises(ValueError, match="size"):
        load_image_folder(tmp_path, size=(0, 4))


# ------------------------------------------------------- load_digits_or_mnist
def test_load_digits_or_mnist_falls_back_to_digits(monkeypatch):
    from sknn.datasets import load_digits_or_mnist

    monkeypatch.delenv("SKNN_MNIST", raising=False)
    data = load_digits_or_mnist()
    assert data.images.shape == (1797, 8, 8) and data.data.shape == (1797, 64)
    assert data.max_value == 16.0 and data.source == "scikit-learn digits"
    assert data.images.max() == 16
    X, y = load_digits_or_mnist(return_X_y=True)
    np.testing.assert_array_equal(X, data.data)
    np.testing.assert_array_equal(y, data.target)


def test_load_digits_or_mnist_reads_the_environment_variable(
        tmp_path, mnist_arrays, monkeypatch):
    from sknn.datasets import load_digits_or_mnist

    _write_folder(tmp_path, mnist_arrays, gz=True)
    monkeypatch.setenv("SKNN_MNIST", str(tmp_path))
    data = load_digits_or_mnist()
    (X_train, y_train), (X_test, y_test) = mnist_arrays
    np.testing.assert_array_equal(data.images, np.concatenate([X_train, X_test]))
    np.testing.assert_array_equal(data.target, np.concatenate([y_train, y_test]))
    assert data.images.dtype == np.uint8 and data.data.shape == (10, 784)
    assert data.max_value == 255.0 and data.source.startswith("MNIST (")
    # an explicit path wins over the variable
    monkeypatch.setenv("SKNN_MNIST", str(tmp_path / "elsewhere"))
    assert len(load_digits_or_mnist(tmp_path).images) == 10


def test_load_digits_or_mnist_never_replaces_a_missing_path(tmp_path, monkeypatch):
    from sknn.datasets import load_digits_or_mnist

    monkeypatch.setenv("SKNN_MNIST", str(tmp_path / "nope.npz"))
    with pytest.raises(FileNotFoundError, match="SKNN_MNIST environment variable"):
        load_digits_or_mnist()
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_digits_or_mnist(tmp_path / "nope.npz")


def test_load_digits_or_mnist_real_mnist(mnist_dir):
    from sknn.datasets import load_digits_or_mnist

    data = load_digits_or_mnist(mnist_dir)
    assert data.images.shape[1:] == (28, 28) and len(data.images) >= 10000


# ------------------------------------------------------------------------ CSV
def test_csv_has_header(tmp_path):
    from sknn.datasets import csv_has_header

    cases = {"a,b,label\n1,2,x\n": True,
             "0,1,2,label\n1,2,3,x\n": True,  # pandas' numbered columns
             "5.1,3.5,setosa\n4.9,3.0,setosa\n": False,
             "1,0,1\n0,1,0\n": False}
    for i, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"{i}.csv"
        path.write_text(text)
        assert csv_has_header(path) is expected, text


def test_load_csv_keeps_the_first_row_of_a_headerless_file(tmp_path):
    from sknn.datasets import load_csv

    path = tmp_path / "iris.csv"
    path.write_text("5.1,3.5,setosa\n4.9,3.0,setosa\n6.3,3.3,virginica\n")
    X, y = load_csv(path, target=-1)
    assert list(X.columns) == ["0", "1"] and len(X) == 3
    assert list(y) == ["setosa", "setosa", "virginica"]
    X, y = load_csv(path, target="2")
    assert len(X) == 3
    X, y = load_csv(path, target=None)
    assert X.shape == (3, 3) and y is None
    with pytest.raises(ValueError, match="no header row, so its columns are "
                                         "numbered 0 to 2"):
        load_csv(path)


def test_load_csv_names_rows_without_a_label(tmp_path):
    from sknn.datasets import load_csv

    path = tmp_path / "t.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,\n5,6,y\n7,8,\n")
    with pytest.raises(ValueError, match=r"label column 'label' is empty on lines "
                                         r"3, 5; fill in or remove"):
        load_csv(path)


def test_load_csv_errors(tmp_path):
    from sknn.datasets import load_csv

    with pytest.raises(FileNotFoundError, match="no such CSV file"):
        load_csv(tmp_path / "missing.csv")
    (tmp_path / "only.csv").write_text("label\nx\ny\n")
    with pytest.raises(ValueError, match="no feature columns"):
        load_csv(tmp_path / "only.csv")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"no label column 'species'; it has the "
                                         r"columns 'a', 'b'"):
        load_csv(tmp_path / "t.csv", target="species")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00garbage\x00")
    with pytest.raises(ValueError, match="not a readable CSV file"):
        load_csv(tmp_path / "bin.csv")
