"""The ``sknn`` command line: ``sknn train`` and ``sknn predict``.

``sknn train`` loads data (sklearn's digits by default, or an ``mnist.npz``, an
MNIST IDX folder, an image folder or a CSV file), fits a
``StandardScaler + MLPClassifierTorch`` (or ``CNNClassifier``) Pipeline with a
per-epoch progress bar, prints scikit-learn's classification report on a
held-out split and saves the fitted Pipeline with joblib. ``sknn predict``
loads that file and predicts image files or CSV rows.

The saved object is a plain fitted :class:`~sklearn.pipeline.Pipeline`, so
``joblib.load(path).predict(X)`` works in Python; the CLI also stores how the
input was read (image size, channels, CSV columns) in its ``sknn_input_``
attribute so that ``sknn predict`` can read new files the same way. Labels are
decoded by the estimator itself (``classes_``).
"""

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

from sknn.datasets import IMAGE_EXTENSIONS, is_mnist_folder

#: exit status for bad input (paths, formats, columns, parameter values)
EXIT_BAD_INPUT = 2

DEFAULT_EPOCHS = 30


class InputError(ValueError):
    """A problem with the user's input that the CLI reports in one line."""


# ------------------------------------------------------------------ arguments
def _int_list(text):
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers such as 512,256; got "
            f"{text!r}")
    return values


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(
            f"expected a fraction strictly between 0 and 1; got {text!r}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def build_parser():
    """The argparse parser of the ``sknn`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    from sknn import __version__

    parser = argparse.ArgumentParser(
        prog="sknn",
        description="Train and use scikit-learn neural-network classifiers "
                    "(PyTorch via skorch) from the command line.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,predict}")
    sub.required = True

    train = sub.add_parser(
        "train", help="fit a model, print a classification report, save it",
        description="Fit a StandardScaler + sknn classifier Pipeline, show the "
                    "progress per epoch, print the classification report on a "
                    "held-out split and save the fitted Pipeline.")
    train.add_argument(
        "--data", metavar="PATH",
        help="an mnist.npz, an MNIST IDX folder, an image folder "
             "(PATH/<class>/*.png|jpg|jpeg|bmp) or a CSV file with a label "
             "column; default: sklearn's digits")
    train.add_argument("--target", metavar="NAME", default="label",
                       help="label column of a CSV file (default: label)")
    train.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                       help="MLPClassifierTorch or CNNClassifier (default: mlp)")
    train.add_argument("--hidden", type=_int_list, metavar="512,256",
                       help="hidden layer sizes (for cnn: the dense layers "
                            "after the convolutions); default: the estimator's")
    train.add_argument("--conv", type=_int_list, metavar="32,64,64",
                       help="convolution filters per block (cnn only)")
    train.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS,
                       metavar="N",
                       help=f"maximum number of epochs (default: {DEFAULT_EPOCHS})")
    train.add_argument("--batch-size", type=_positive_int, metavar="N",
                       help="mini-batch size (default: min(200, n_samples))")
    train.add_argument("--lr", type=_positive_float, default=1e-3, metavar="X",
                       help="initial learning rate (default: 0.001)")
    train.add_argument("--solver", choices=("adam", "sgd"), default="adam",
                       help="optimizer (default: adam)")
    train.add_argument("--early-stopping", action="store_true",
                       help="hold out 10%% of the training data, validate each "
                            "epoch, stop when validation accuracy stalls")
    train.add_argument("--test-size", type=_fraction, default=0.25, metavar="F",
                       help="held-out fraction for the report (default: 0.25)")
    train.add_argument("--image-size", type=_int_list, default=(32, 32),
                       metavar="H,W",
                       help="size image-folder images are resized to "
                            "(default: 32,32)")
    train.add_argument("--grayscale", action="store_true",
                       help="read image-folder images as one channel")
    train.add_argument("--out", default="model.joblib", metavar="PATH",
                       help="where to save the fitted Pipeline "
                            "(default: model.joblib)")
    train.add_argument("--plot", metavar="PATH",
                       help="save the learning curves to this image file")
    train.add_argument("--device", default="auto",
                       help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    train.add_argument("--seed", type=int, default=0, metavar="N",
                       help="random seed of the split and the model (default: 0)")
    train.add_argument("--no-progress", action="store_true",
                       help="do not show the per-epoch progress bar")

    predict = sub.add_parser(
        "predict", help="predict image files or CSV rows with a saved model",
        description="Print the predicted label and its probability for each "
                    "image file (folders are searched for images), or write "
                    "the predictions for the rows of a CSV file. For a model "
                    "trained on images, CSV rows are pixel values on the "
                    "source's scale (0-16 for digits, 0-255 otherwise).")
    predict.add_argument("--model", required=True, metavar="PATH",
                         help="a model saved by 'sknn train --out'")
    predict.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="image files, folders of images, or CSV files")
    predict.add_argument("--output", metavar="PATH",
                         help="write CSV predictions here instead of stdout")
    return parser


# ----------------------------------------------------------------------- data
def _load_digits_data():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    # pixels 0..16 -> [0, 1], like every other image source here
    return (X / 16.0).astype(np.float32), y, {
        "kind": "image", "image_shape": (8, 8, 1), "grayscale": True,
        "pixel_max": 16.0, "source": "sklearn digits"}


def _load_mnist_data(path):
    from sknn.datasets import load_mnist

    (X_train, y_train), (X_test, y_test) = load_mnist(path)
    X = np.concatenate([X_train, X_test])
    y = np.concatenate([y_train, y_test])
    X = (X.reshape(len(X), -1) / 255.0).astype(np.float32)
    shape = (*X_test.shape[1:], 1)
    return X, y, {"kind": "image", "image_shape": shape, "grayscale": True,
                  "pixel_max": 255.0, "source": f"MNIST ({path})"}


def _load_image_data(path, size, grayscale):
    from sknn.datasets import load_image_folder

    if len(size) != 2:
        raise InputError(f"--image-size takes two numbers H,W; got {size}")
    X, y = load_image_folder(path, size=size, grayscale=grayscale)
    shape = X.shape[1:]
    return X.reshape(len(X), -1), y, {
        "kind": "image", "image_shape": tuple(int(s) for s in shape),
        "grayscale": grayscale, "pixel_max": 255.0,
        "source": f"image folder {path}"}


def _read_csv(path):
    import pandas as pd

    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError,
            UnicodeDecodeError) as exc:
        raise InputError(f"{str(path)!r} is not a readable CSV file: {exc}") from exc


def _load_csv_data(path, target):
    frame = _read_csv(path)
    if target not in frame.columns:
        raise InputError(
            f"the CSV file {str(path)!r} has no column {target!r}; its columns "
            f"are {list(frame.columns)[:20]}. Name the label column with "
            "--target NAME.")
    y = frame[target].to_numpy()
    X = frame.drop(columns=[target])
    non_numeric = [c for c in X.columns if not np.issubdtype(X[c].dtype, np.number)]
    if non_numeric:
        raise InputError(
            f"the CSV file {str(path)!r} has non-numeric feature columns "
            f"{non_numeric[:10]}; encode or drop them first.")
    if X.shape[1] == 0:
        raise InputError(f"the CSV file {str(path)!r} has no feature columns "
                         f"besides {target!r}.")
    return X.to_numpy(dtype=np.float32), y, {
        "kind": "table", "feature_names": [str(c) for c in X.columns],
        "target": target, "source": f"CSV {path}"}


def load_data(args):
    """``(X, y, info)`` for ``sknn train``: X 2-D float32 and a description
    of the input (``info['kind']`` is 'image' or 'table')."""
    if args.data is None:
        return _load_digits_data()
    path = Path(args.data)
    if not path.exists():
        raise InputError(f"--data {args.data!r}: no such file or folder")
    if path.is_dir():
        if is_mnist_folder(path):
            return _load_mnist_data(path)
        return _load_image_data(path, args.image_size, args.grayscale)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_mnist_data(path)
    if suffix in (".csv", ".txt", ".tsv") or suffix == "":
        return _load_csv_data(path, args.target)
    raise InputError(
        f"--data {args.data!r}: unsupported format {suffix!r}. Expected an "
        "mnist.npz, an MNIST IDX folder, an image folder or a .csv file.")


# ------------------------------------------------------------------- training
def _estimator(args, info, n_classes):
    common = dict(max_iter=args.epochs, learning_rate_init=args.lr,
                  solver=args.solver, early_stopping=args.early_stopping,
                  random_state=args.seed, device=args.device)
    if args.batch_size is not None:
        common["batch_size"] = args.batch_size
    if not args.no_progress:
        from sknn._progress import EpochProgressBar

        common["callbacks"] = [("epoch_progress", EpochProgressBar(args.epochs))]
    if args.model == "mlp":
        from sknn import MLPClassifierTorch

        if args.conv is not None:
            raise InputError("--conv applies to --model cnn only")
        if args.hidden is not None:
            common["hidden_layer_sizes"] = args.hidden
        return MLPClassifierTorch(**common)
    try:
        from sknn import CNNClassifier
    except ImportError as exc:
        raise InputError(
            "--model cnn needs sknn.CNNClassifier, which this version of sknn "
            "does not have; use --model mlp") from exc
    if args.conv is not None:
        common["conv_filters"] = args.conv
    if args.hidden is not None:
        common["dense_layer_sizes"] = args.hidden
    if info["kind"] == "image":
        common["input_shape"] = info["image_shape"]
    return CNNClassifier(**common)


def train(args, out=None):
    """Run ``sknn train`` with parsed arguments; returns the exit status."""
    out = sys.stdout if out is None else out
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import accuracy_score, classification_report
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from sknn._persistence import dump

    X, y, info = load_data(args)
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise InputError(f"the data have a single class ({classes[0]!r}); "
                         "a classifier needs at least two")
    stratify = y if counts.min() >= 2 else None
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, random_state=args.seed, stratify=stratify)
    print(f"Data: {info['source']}: {len(X)} samples, {X.shape[1]} features, "
          f"{len(classes)} classes; training on {len(X_train)}, "
          f"testing on {len(X_test)}", file=out)
    model = Pipeline([("scaler", StandardScaler()),
                      ("clf", _estimator(args, info, len(classes)))])
    print(f"Model: {model.named_steps['clf']!r}", file=out)
    out.flush()
    with warnings.catch_warnings():
        # the progress bar already shows that training ran all its epochs
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    clf = model.named_steps["clf"]
    y_pred = model.predict(X_test)
    print(f"\nClassification report on the held-out {len(X_test)} samples:",
          file=out)
    print(classification_report(y_test, y_pred, zero_division=0), file=out)
    print(f"Accuracy: {accuracy_score(y_test, y_pred):.4f}", file=out)
    model.sknn_input_ = info
    saved = dump(model, args.out)
    print(f"Saved the fitted Pipeline to {saved}", file=out)
    if args.plot:
        from sknn.plotting import plot_history

        fig = plot_history(clf, args.plot)
        import matplotlib.pyplot as plt

        plt.close(fig)
        print(f"Saved the learning curves to {args.plot}", file=out)
    return 0


# ----------------------------------------------------------------- prediction
def _expand_inputs(inputs):
    """Input paths with folders replaced by the image files inside them."""
    paths = []
    for text in inputs:
        path = Path(text)
        if not path.exists():
            raise InputError(f"{text!r}: no such file or folder")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise InputError(f"the folder {text!r} holds no image files")
            paths.extend(found)
        else:
            paths.append(path)
    return paths


def _predict_images(model, info, paths, out):
    from sknn.datasets import load_image

    if info.get("kind") != "image":
        raise InputError(
            f"{str(paths[0])!r}: this model was trained on CSV columns "
            f"{info.get('feature_names', [])[:5]}..., not images; pass a CSV file")
    height, width, _ = info["image_shape"]
    images = np.stack([
        load_image(p, size=(height, width), grayscale=info["grayscale"]).ravel()
        for p in paths])
    proba = model.predict_proba(images)
    classes = model.classes_
    for path, row in zip(paths, proba):
        best = int(np.argmax(row))
        print(f"{path}\t{classes[best]}\t{row[best]:.4f}", file=out)


def _predict_csv(model, info, path, output, out):
    frame = _read_csv(path)
    if info.get("kind") == "table":
        names = info["feature_names"]
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise InputError(
                f"the CSV file {str(path)!r} lacks the feature columns "
                f"{missing[:10]} the model was trained on")
        X = frame[names]
    else:
        X = frame.drop(columns=[c for c in ("label",) if c in frame.columns])
        n_expected = int(np.prod(info["image_shape"]))
        if X.shape[1] != n_expected:
            raise InputError(
                f"the CSV file {str(path)!r} has {X.shape[1]} feature columns; "
                f"this image model expects {n_expected} pixel columns")
    non_numeric = [c for c in X.columns if not np.issubdtype(X[c].dtype, np.number)]
    if non_numeric:
        raise InputError(f"the CSV file {str(path)!r} has non-numeric columns "
                         f"{non_numeric[:10]}")
    X = X.to_numpy(dtype=np.float32)
    if info.get("kind") == "image":
        # pixel columns come on the source's own scale (0-16 digits, 0-255
        # otherwise); the model was trained on pixels in [0, 1]
        X = X / np.float32(info.get("pixel_max", 1.0))
    proba = model.predict_proba(X)
    best = np.argmax(proba, axis=1)
    import pandas as pd

    result = pd.DataFrame({"prediction": model.classes_[best],
                           "probability": proba[np.arange(len(best)), best]})
    if output:
        result.to_csv(output, index=False)
        print(f"Wrote {len(result)} predictions for {path} to {output}", file=out)
    else:
        result.to_csv(out, index=False)


def predict(args, out=None):
    """Run ``sknn predict`` with parsed arguments; returns the exit status."""
    out = sys.stdout if out is None else out
    from sknn._persistence import load

    paths = _expand_inputs(args.inputs)
    csvs = [p for p in paths if p.suffix.lower() in (".csv", ".tsv", ".txt")]
    images = [p for p in paths if p.suffix.lower() in IMAGE_EXTENSIONS]
    other = [p for p in paths if p not in csvs and p not in images]
    if other:
        raise InputError(
            f"{str(other[0])!r}: unsupported input format; expected image files "
            f"({', '.join(IMAGE_EXTENSIONS)}), folders of them, or .csv files")
    if len(csvs) > 1 and args.output:
        raise InputError("--output takes one CSV input at a time")
    model = load(args.model)
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise InputError(f"{args.model!r} does not hold a fitted classifier")
    info = getattr(model, "sknn_input_", {"kind": "table", "feature_names": []})
    if images:
        _predict_images(model, info, images, out)
    for path in csvs:
        _predict_csv(model, info, path, args.output, out)
    return 0


# ----------------------------------------------------------------------- main
def main(argv=None):
    """Entry point of the ``sknn`` command (and ``python -m sknn``).

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success, 2 for bad input (a missing file, an unsupported format,
        a bad column or parameter value), reported in one line on stderr.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error
        return int(exc.code or 0)
    try:
        if args.command == "train":
            return train(args)
        return predict(args)
    except (InputError, FileNotFoundError, IsADirectoryError, PermissionError,
            NotADirectoryError, ValueError, ImportError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        print(f"sknn {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"sknn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
