"""The ``sknn`` command line: ``sknn train``, ``sknn predict``, ``sknn export``.

``sknn train`` loads data (scikit-learn's digits by default, or an
``mnist.npz``, an MNIST IDX folder, an image folder or a CSV file), fits a
Pipeline with a per-epoch progress bar, prints scikit-learn's classification
report on a held-out split and saves the fitted Pipeline. ``sknn predict``
loads that file and predicts image files or CSV rows; ``sknn export`` writes
it as ONNX or in sknn's pickle-free ``.sknn`` format. One function,
:func:`load_model`, reads every model file, by its suffix.

The saved Pipeline is the whole recipe: for images it starts with a
:class:`~sknn.preprocessing.PixelScaler` (flattening, ``/ max_value``), for
tables with the scaler (and one-hot encoder) the command fitted, so
``joblib.load(path).predict(X)`` takes the arrays exactly as
:mod:`sknn.datasets` returns them. Everything ``sknn predict`` needs to read a
new file (image size, grayscale, pixel scale, CSV columns) is read from the
Pipeline's own fitted attributes.

Bad input never ends in a traceback: it is one line on stderr and exit
status 2. Ctrl-C ends with status 130 and saves nothing.
"""

import argparse
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

from sknn._persistence import atomic_write
from sknn.datasets import IMAGE_EXTENSIONS, is_mnist_folder

#: exit status for bad input (paths, formats, columns, parameter values)
EXIT_BAD_INPUT = 2
#: exit status after Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130
#: exit status for an unexpected error (a bug: please report it)
EXIT_INTERNAL = 1
#: exit status when stdout's reader goes away (128 + SIGPIPE)
EXIT_BROKEN_PIPE = 141

DEFAULT_EPOCHS = 30

#: model file suffixes: joblib pickles; the pickle-free format and ONNX (read
#: through sknn.load and onnxruntime where this sknn has them)
MODEL_SUFFIXES = (".joblib", ".sknn", ".onnx")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")

#: the estimators' option names, written out so that ``sknn --help`` does not
#: import torch (tests/test_cli.py checks them against sknn._modules)
ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
WEIGHT_INITS = ("auto", "glorot_uniform", "glorot_normal", "he_uniform",
                "he_normal", "truncated_normal", "torch")

#: a text column with more distinct values than this (and than half its rows)
#: is an identifier or free text, not a category to one-hot encode
MAX_CATEGORIES = 50


class InputError(ValueError):
    """A problem with the user's input that the CLI reports in one line."""


class TrainingInterrupted(Exception):
    """Ctrl-C during training: the model is discarded, nothing is saved."""


# ------------------------------------------------------------------ arguments
class _Parser(argparse.ArgumentParser):
    """argparse with usage errors in one line (the usage is one --help away)."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see "
                                  f"{self.prog} --help)\n")


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


def _number(text, low, high, low_open, high_open, what):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    ok = (low < value if low_open else low <= value) and (
        value < high if high_open else value <= high)
    if not ok:
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}")
    return value


def _fraction(text):
    return _number(text, 0, 1, True, True, "a fraction strictly between 0 and 1")


def _dropout(text):
    return _number(text, 0, 1, False, True, "a fraction in [0, 1)")


def _unit(text):
    return _number(text, 0, 1, False, False, "a number in [0, 1]")


def _non_negative(text):
    return _number(text, 0, float("inf"), False, True, "a number >= 0")


def _positive_float(text):
    return _number(text, 0, float("inf"), True, True, "a positive number")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _version():
    # read from the metadata, not sknn.__version__: importing the package
    # would import torch, and `sknn --help` should answer at once
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sknn")
    except PackageNotFoundError:  # pragma: no cover - a source tree
        return "0.0.0+unknown"


def _header_flags(parser):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--header", dest="header", action="store_const", const=True,
                       default="infer",
                       help="the CSV's first line holds the column names")
    group.add_argument("--no-header", dest="header", action="store_const",
                       const=False,
                       help="the CSV has no header line: its first line is data "
                            "(default: detected; a first line with numbers in it "
                            "is data)")


def build_parser():
    """The argparse parser of the ``sknn`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = _Parser(
        prog="sknn",
        description="Train and use scikit-learn neural-network classifiers "
                    "(PyTorch via skorch) from the command line.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="{train,predict,export}")
    sub.required = True

    train = sub.add_parser(
        "train", help="fit a model, print a classification report, save it",
        description="Fit a Pipeline (pixel scaling or column scaling, then an "
                    "sknn classifier), show the progress per epoch, print the "
                    "classification report on a held-out split and save the "
                    "fitted Pipeline. Keras users: --solver sgd --momentum 0 is "
                    "SGD(); Keras' l2(L) at batch size B is --alpha 2*L*B.")
    data = train.add_argument_group("data")
    data.add_argument(
        "--data", metavar="PATH",
        help="an mnist.npz, an MNIST IDX folder, an image folder "
             "(PATH/<class>/*.png|jpg|jpeg|bmp) or a CSV file with a label "
             "column; default: scikit-learn's 8x8 digits")
    data.add_argument("--target", metavar="NAME", default="label",
                      help="label column of a CSV file: a name, or a position "
                           "such as -1 for the last column (default: label)")
    _header_flags(data)
    data.add_argument("--image-size", type=_int_list, default=(32, 32),
                      metavar="H,W",
                      help="size image-folder images are resized to "
                           "(default: 32,32)")
    data.add_argument("--grayscale", action="store_true",
                      help="read image-folder images as one channel")
    data.add_argument("--test-size", type=_fraction, default=0.25, metavar="F",
                      help="held-out fraction for the report (default: 0.25)")

    net = train.add_argument_group("network")
    net.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                     help="MLPClassifierTorch or CNNClassifier (default: mlp)")
    net.add_argument("--hidden", type=_int_list, metavar="512,256",
                     help="hidden layer sizes (for cnn: the dense layers after "
                          "the convolutions); default: the estimator's")
    net.add_argument("--conv", type=_int_list, metavar="32,64,64",
                     help="convolution filters per block (cnn only)")
    net.add_argument("--activation", choices=ACTIVATIONS,
                     help="hidden-layer activation (default: relu)")
    net.add_argument("--dropout", type=_dropout, metavar="P",
                     help="dropout rate after each hidden layer, Keras' "
                          "Dropout(P) (default: 0)")
    net.add_argument("--weight-init", choices=WEIGHT_INITS, metavar="NAME",
                     help="weight initialiser: " + ", ".join(WEIGHT_INITS) +
                          " (default: auto, scikit-learn's); truncated_normal "
                          "is Keras' TruncatedNormal(stddev=0.05)")

    fit = train.add_argument_group("training")
    fit.add_argument("--epochs", type=_positive_int, default=DEFAULT_EPOCHS,
                     metavar="N",
                     help=f"maximum number of epochs (default: {DEFAULT_EPOCHS})")
    fit.add_argument("--batch-size", type=_positive_int, metavar="N",
                     help="mini-batch size (default: min(200, n_samples))")
    fit.add_argument("--solver", choices=("adam", "sgd"), default="adam",
                     help="optimizer (default: adam)")
    fit.add_argument("--lr", type=_positive_float, default=1e-3, metavar="X",
                     help="initial learning rate (default: 0.001)")
    fit.add_argument("--momentum", type=_unit, metavar="M",
                     help="SGD momentum (default: 0.9, scikit-learn's, with "
                          "Nesterov); Keras' SGD() is --momentum 0")
    fit.add_argument("--no-nesterov", action="store_true",
                     help="plain momentum instead of Nesterov's, as Keras' "
                          "SGD(momentum=M)")
    fit.add_argument("--alpha", type=_non_negative, metavar="A",
                     help="L2 penalty, scikit-learn's alpha (default: 0.0001); "
                          "Keras' l2(L) at batch size B is alpha = 2*L*B")
    fit.add_argument("--early-stopping", action="store_true",
                     help="validate every epoch on a held-out part of the "
                          "training data and stop when the validation accuracy "
                          "stalls (the best epoch's weights are kept)")
    fit.add_argument("--validation-fraction", type=_fraction, metavar="F",
                     help="hold out F of the training data and report "
                          "val_loss/val_accuracy every epoch, as Keras' "
                          "validation_split (default with --early-stopping: 0.1)")
    fit.add_argument("--patience", type=_positive_int, metavar="N",
                     help="scikit-learn's n_iter_no_change (default: 10): stop "
                          "after N + 1 epochs in a row without improvement, "
                          "Keras' EarlyStopping(patience=N + 1)")
    fit.add_argument("--device", default="auto",
                     help="auto, cpu, cuda, cuda:N or mps (default: auto)")
    fit.add_argument("--seed", type=int, default=0, metavar="N",
                     help="random seed of the split and the model (default: 0)")
    fit.add_argument("--no-progress", action="store_true",
                     help="do not show the per-epoch progress bar")

    output = train.add_argument_group("output")
    output.add_argument("--out", default="model.joblib", metavar="PATH",
                        help="where to save the fitted Pipeline: a .joblib "
                             "file, or a .sknn file (sknn.save: no pickle) "
                             "(default: model.joblib)")
    output.add_argument("--plot", metavar="PATH",
                        help="save the learning curves to this image file")

    predict = sub.add_parser(
        "predict", help="predict image files or CSV rows with a saved model",
        description="Print the predicted label and its probability for each "
                    "image file (folders are searched for images), or the "
                    "predictions for the rows of a CSV file. For a model "
                    "trained on images, CSV rows are pixel values on the "
                    "training data's scale (0-16 for the digits, 0-255 for "
                    "MNIST). A line on stderr warns when an image differs "
                    "clearly from the training images.")
    predict.add_argument("--model", required=True, metavar="PATH",
                         help="a model saved by 'sknn train --out' (.joblib or "
                              ".sknn) or written by 'sknn export --onnx'")
    predict.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="image files, folders of images, or CSV files")
    predict.add_argument("--output", metavar="PATH",
                         help="write the predictions to this CSV file instead "
                              "of stdout")
    predict.add_argument("--invert", action="store_true",
                         help="invert images before predicting (dark-on-light "
                              "digits for a model trained on light-on-dark "
                              "ones, such as MNIST and the digits)")
    _header_flags(predict)

    export = sub.add_parser(
        "export", help="write a saved model as ONNX or as a .sknn file",
        description="Convert a model saved by 'sknn train' to ONNX (one graph "
                    "for the whole Pipeline: 2-D float32 rows in, the labels "
                    "and an (N, n_classes) probability tensor out) and/or to "
                    "the pickle-free .sknn format. Needs sknn[deploy].")
    export.add_argument("--model", required=True, metavar="PATH",
                        help="a .joblib or .sknn model")
    export.add_argument("--onnx", metavar="PATH", help="write an .onnx file here")
    export.add_argument("--sknn", metavar="PATH", help="write a .sknn file here")
    return parser


# ---------------------------------------------------------------- model files
def _model_format(path):
    suffix = Path(path).suffix.lower()
    return suffix if suffix in MODEL_SUFFIXES else ".joblib"


def load_model(path):
    """Load a saved model; the file's suffix chooses the reader.

    This is the one place the command loads a model: ``.sknn`` through
    :func:`sknn.load` (JSON and safetensors, no pickle), ``.onnx`` through
    onnxruntime, anything else (``.joblib``) through joblib.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    model : object
        A fitted Pipeline or estimator with ``predict_proba`` and
        ``classes_``, or for ``.onnx`` an :class:`OnnxModel`.

    Raises
    ------
    InputError, FileNotFoundError, ValueError, ImportError
        If the file cannot be read as a model of its format (one line each).
    """
    fmt = _model_format(path)
    if fmt != ".joblib" and not Path(path).is_file():
        raise FileNotFoundError(f"The model file {str(path)!r} does not exist.")
    if fmt == ".onnx":
        return OnnxModel(path)
    if fmt == ".sknn":
        import sknn

        model = sknn.load(path)
    else:
        from sknn._persistence import load

        try:
            model = load(path)
        except (ModuleNotFoundError, AttributeError) as exc:
            # a pickle names classes and modules of the versions that wrote it
            raise InputError(
                f"{str(path)!r} was saved by another version of sknn or of its "
                f"dependencies ({_one_line(exc)}); retrain it, or load it with "
                "that version and save it with sknn.save") from exc
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise InputError(f"{str(path)!r} does not hold a fitted classifier")
    return model


def save_model(model, path):
    """Save a fitted model atomically; the suffix of ``path`` chooses the
    format: ``.sknn`` through :func:`sknn.save`, anything else joblib."""
    if _model_format(path) == ".sknn":
        import sknn

        return sknn.save(model, path)
    from sknn._persistence import dump

    return dump(model, path)


def _check_out_path(path, option="--out", formats=(".joblib", ".sknn")):
    """Fail before the work, not after, on a path the model cannot go to."""
    path = Path(path)
    fmt = _model_format(path)
    if fmt not in formats:
        raise InputError(
            f"{option} {str(path)!r}: this command writes "
            f"{' or '.join(formats)} files"
            + ("; make an ONNX file with 'sknn export --onnx'"
               if fmt == ".onnx" else ""))
    folder = path.parent
    if not folder.is_dir():
        raise InputError(f"{option} {str(path)!r}: the folder {str(folder)!r} "
                         "does not exist")
    if path.is_dir():
        raise InputError(f"{option} {str(path)!r} is a folder; give a file name")


#: ONNX metadata key for what ``sknn predict`` needs to read files (JSON)
ONNX_SPEC_KEY = "sknn.input_spec"


class OnnxModel:
    """An exported ONNX classifier run by onnxruntime, for ``sknn predict``.

    The graph takes 2-D rows (float32, or uint8 for some image models) and
    returns the labels and an (N, n_classes) probability tensor. ``spec_`` is
    what :func:`input_spec` said about the model when ``sknn export`` wrote
    the file (image size, pixel scale, CSV columns, classes), or None.
    """

    def __init__(self, path):
        try:
            import onnxruntime
        except ImportError as exc:
            raise ImportError('reading .onnx models needs onnxruntime: pip install '
                              '"sknn[deploy]"') from exc
        try:
            self.session_ = onnxruntime.InferenceSession(
                os.fspath(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InputError(f"{str(path)!r} is not a readable ONNX model: "
                             f"{_one_line(exc)}") from exc
        graph_input = self.session_.get_inputs()[0]
        self.input_name_ = graph_input.name
        self.input_dtype_ = np.uint8 if graph_input.type == "tensor(uint8)" \
            else np.float32
        width = graph_input.shape[-1] if graph_input.shape else None
        meta = self.session_.get_modelmeta().custom_metadata_map
        import json

        self.spec_ = json.loads(meta[ONNX_SPEC_KEY]) if ONNX_SPEC_KEY in meta \
            else None
        if self.spec_ is not None:
            self.spec_.setdefault("categories", {})
            if self.spec_.get("image_shape"):
                self.spec_["image_shape"] = tuple(self.spec_["image_shape"])
        self.n_features_in_ = width if isinstance(width, int) else None
        state = (self.spec_ or {}).get("pixel_scaler")
        self.pixel_scaler_ = _pixel_scaler_from_spec(state) if state else None

    def labels_and_proba(self, X):
        """(labels, probabilities) of X, from the graph's outputs; images
        unlike the training images warn as the Pipeline's PixelScaler does."""
        if self.pixel_scaler_ is not None:
            self.pixel_scaler_.transform(X)  # for its warnings only
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        outputs = self.session_.run(None, {self.input_name_:
                                           X.astype(self.input_dtype_)})
        return np.asarray(outputs[0]), np.asarray(outputs[1], dtype=np.float64)


def _onnx_spec(model):
    """What :func:`input_spec` says about a model, as JSON for ONNX metadata,
    with the PixelScaler's fitted statistics so that ``sknn predict`` warns
    about unlike images for the ONNX file as for the Pipeline."""
    import json

    from sknn.preprocessing import PixelScaler

    spec = dict(input_spec(model))
    spec.pop("categories", None)
    spec["classes"] = np.asarray(model.classes_).tolist()
    first = model.steps[0][1] if hasattr(model, "steps") else None
    if isinstance(first, PixelScaler):
        spec["pixel_scaler"] = {
            key: value for key, value in vars(first).items()
            if key.endswith("_") and key != "feature_names_in_"}
        spec["pixel_scaler"]["max_value"] = float(first.max_value)
    return json.dumps(spec)


def _pixel_scaler_from_spec(state):
    """A fitted PixelScaler rebuilt from :func:`_onnx_spec`'s plain values."""
    from sknn.preprocessing import PixelScaler

    scaler = PixelScaler(max_value=state["max_value"])
    for key, value in state.items():
        if key.endswith("_"):
            setattr(scaler, key, tuple(value) if isinstance(value, list) else value)
    return scaler


def export(args, out=None):
    """Run ``sknn export`` with parsed arguments; returns the exit status."""
    out = sys.stdout if out is None else out
    if not args.onnx and not args.sknn:
        raise InputError("give --onnx PATH and/or --sknn PATH")
    if args.onnx:
        _check_out_path(args.onnx, "--onnx", (".onnx",))
    if args.sknn:
        _check_out_path(args.sknn, "--sknn", (".sknn",))
    model = load_model(args.model)
    if isinstance(model, OnnxModel):
        raise InputError(f"--model {args.model!r} is already an ONNX file; export "
                         "from the .joblib or .sknn model")
    if args.sknn:
        save_model(model, args.sknn)
        print(f"Saved {args.sknn} (sknn.save: JSON and safetensors, no pickle)",
              file=out)
    if args.onnx:
        import sknn

        onx = sknn.to_onnx(model)
        entry = onx.metadata_props.add()
        entry.key, entry.value = ONNX_SPEC_KEY, _onnx_spec(model)
        atomic_write(args.onnx, lambda f: f.write(onx.SerializeToString()))
        graph_input = onx.graph.input[0]
        print(f"Saved {args.onnx}: input {graph_input.name!r} (rows of "
              f"{input_spec(model)['n_features']} values), outputs "
              f"{[o.name for o in onx.graph.output]}", file=out)
    return 0


# ----------------------------------------------------------------------- data
class TrainingData:
    """What ``sknn train`` read: X as :mod:`sknn.datasets` returns it, y, and
    how to build the first steps of the Pipeline for it."""

    def __init__(self, X, y, source, max_value=None, notes=()):
        self.X = X
        self.y = y
        self.source = source
        self.max_value = max_value  # images only: a white pixel's value
        self.notes = list(notes)

    @property
    def is_image(self):
        return self.max_value is not None

    def describe(self):
        if self.is_image:
            shape = self.X.shape[1:]
            mode = "grayscale" if len(shape) == 2 or shape[-1] == 1 else "colour"
            return f"{len(self.X)} {shape[0]}x{shape[1]} {mode} images"
        return f"{len(self.X)} rows, {self.X.shape[1]} feature columns"


def _load_digits_data():
    from sklearn.datasets import load_digits

    digits = load_digits()
    return TrainingData(digits.images, digits.target, "scikit-learn digits",
                        max_value=16.0)


def _load_mnist_data(path):
    from sknn.datasets import load_mnist

    (X_train, y_train), (X_test, y_test) = load_mnist(path)
    return TrainingData(np.concatenate([X_train, X_test]),
                        np.concatenate([y_train, y_test]), f"MNIST ({path})",
                        max_value=255.0)


def _load_image_data(path, size, grayscale):
    from sknn.datasets import load_image_folder

    if len(size) != 2:
        raise InputError(f"--image-size takes two numbers H,W; got {size}")
    X, y = load_image_folder(path, size=size, grayscale=grayscale)
    return TrainingData(X, y, f"image folder {path}", max_value=1.0)


def _feature_kinds(X, path):
    """(numeric columns, text columns) of a feature DataFrame; an error for
    missing values and for text columns too varied to one-hot encode."""
    import pandas as pd

    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    text = [c for c in X.columns if c not in numeric]
    gaps = [c for c in numeric if X[c].isna().any()]
    if gaps:
        raise InputError(
            f"{str(path)!r}: missing values in the numeric columns {gaps[:10]}; "
            "fill them in or drop those rows or columns")
    varied = [c for c in text
              if X[c].nunique() > max(MAX_CATEGORIES, len(X) // 2)
              or (X[c].nunique() > 10 and X[c].nunique() == len(X))]
    if varied:
        raise InputError(
            f"{str(path)!r}: the text columns {varied[:10]} have a different value "
            "in (almost) every row, like identifiers or free text, which one-hot "
            "encoding cannot use; drop them")
    return numeric, text


def _load_csv_data(path, target, header):
    from sknn.datasets import csv_has_header, load_csv

    notes = []
    if header == "infer" and not csv_has_header(path):
        notes.append("no header row detected (the first line holds numbers); "
                     "columns are numbered from 0 (pass --header if the first "
                     "line holds names)")
    X, y = load_csv(path, target=target, header=header)
    _, text = _feature_kinds(X, path)
    if text:
        counts = ", ".join(f"{c!r} ({X[c].nunique()} values)" for c in text[:10])
        notes.append(f"one-hot encoding the text columns {counts}")
    return TrainingData(X, y, f"CSV {path}", notes=notes)


def load_data(args):
    """The :class:`TrainingData` for ``sknn train``'s arguments."""
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
    if suffix in CSV_SUFFIXES or suffix == "":
        return _load_csv_data(path, args.target, args.header)
    raise InputError(
        f"--data {args.data!r}: unsupported format {suffix!r}. Expected an "
        "mnist.npz, an MNIST IDX folder, an image folder or a .csv file.")


# ------------------------------------------------------------------- training
def _estimator(args, data):
    common = dict(max_iter=args.epochs, learning_rate_init=args.lr,
                  solver=args.solver, random_state=args.seed, device=args.device,
                  progress_bar=not args.no_progress)
    optional = {"batch_size": args.batch_size, "alpha": args.alpha,
                "dropout": args.dropout, "weight_init": args.weight_init,
                "activation": args.activation, "momentum": args.momentum,
                "n_iter_no_change": args.patience}
    common.update({k: v for k, v in optional.items() if v is not None})
    if args.no_nesterov:
        common["nesterovs_momentum"] = False
    if args.early_stopping or args.validation_fraction is not None:
        common["early_stopping"] = True
        if args.validation_fraction is not None:
            common["validation_fraction"] = args.validation_fraction
        if not args.early_stopping and args.patience is None:
            # validation_split without EarlyStopping: report, never stop
            common["n_iter_no_change"] = args.epochs
    if args.solver != "sgd" and (args.momentum is not None or args.no_nesterov):
        raise InputError("--momentum and --no-nesterov apply to --solver sgd only")
    if args.model == "mlp":
        from sknn import MLPClassifierTorch

        if args.conv is not None:
            raise InputError("--conv applies to --model cnn only")
        if args.hidden is not None:
            common["hidden_layer_sizes"] = args.hidden
        return MLPClassifierTorch(**common)
    from sknn import CNNClassifier

    if args.conv is not None:
        common["conv_filters"] = args.conv
    if args.hidden is not None:
        common["dense_layer_sizes"] = args.hidden
    if data.is_image:
        shape = data.X.shape[1:]
        common["input_shape"] = tuple(int(s) for s in shape) + (
            (1,) if len(shape) == 2 else ())
    return CNNClassifier(**common)


def build_pipeline(args, data):
    """The unfitted Pipeline for the data: every step between the loaded
    arrays and the classifier is in it."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    clf = _estimator(args, data)
    if data.is_image:
        from sknn.preprocessing import PixelScaler

        return Pipeline([("pixels", PixelScaler(max_value=data.max_value)),
                         ("scaler", StandardScaler()), ("clf", clf)])
    numeric, text = _feature_kinds(data.X, args.data)
    if not text:
        return Pipeline([("scaler", StandardScaler()), ("clf", clf)])
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    columns = ColumnTransformer([
        ("numeric", StandardScaler(), numeric),
        ("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False), text),
    ])
    return Pipeline([("columns", columns), ("clf", clf)])


def _fit_interruptibly(model, X, y, standalone=False, bar=False):
    """Fit; Ctrl-C ends the command with status 130 and saves nothing.

    In the ``sknn`` process itself (``standalone``) Ctrl-C during the fit
    ends the process at once: nothing is being written then, and a
    ``KeyboardInterrupt`` raised wherever the training loop happens to be can
    be caught on its way (the estimators catch one to keep the model trained
    so far, as scikit-learn does). When ``main`` is called from Python, it
    raises :class:`TrainingInterrupted` instead.
    """
    from sklearn.exceptions import ConvergenceWarning

    pressed = []

    def on_sigint(signum, frame):
        pressed.append(signum)
        if standalone:
            sys.stdout.flush()
            # below the progress bar's line, not at its end
            print(f"{chr(10) if bar else ''}sknn train: interrupted during "
                  "training; nothing was saved", file=sys.stderr, flush=True)
            os._exit(EXIT_INTERRUPTED)
        raise KeyboardInterrupt

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, on_sigint) if main_thread else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.fit(X, y)
    except BaseException as exc:
        if pressed:
            raise TrainingInterrupted("during training") from exc
        raise
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    clf = model[-1]
    interrupted = bool(pressed)
    for w in caught:
        if "interrupted by user" in str(w.message).lower():
            interrupted = True
        elif not issubclass(w.category, ConvergenceWarning):
            # the progress bar and the summary line say that all epochs ran
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if interrupted:
        n = getattr(clf, "n_iter_", 0)
        raise TrainingInterrupted(f"after {n} epoch{'s' if n != 1 else ''}")


def _stop_summary(clf, epochs, seconds, show_reason):
    """One line: how many epochs ran, and why training stopped early when the
    progress bar (which says so itself) is off."""
    ran = f"Trained {clf.n_iter_} epoch{'s' if clf.n_iter_ != 1 else ''} in " \
          f"{seconds:.1f} s"
    if clf.n_iter_ >= epochs:
        return f"{ran}: all --epochs {epochs} ran (more may help)"
    if not show_reason:
        return ran
    from sknn._progress import stop_reason

    reason = stop_reason(clf.net_) if hasattr(clf, "net_") else None
    return f"{ran}; stopped early: {reason}" if reason else ran


class _KeepGoingOut:
    """stdout for ``sknn train``: when its reader goes away (``sknn train |
    head``), the report is dropped and training and saving go on."""

    def __init__(self, stream):
        self.stream = stream

    def _drop(self):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self.stream.fileno())
        except (AttributeError, OSError, ValueError):
            pass  # not a real file: nothing will be flushed at exit
        self.stream = open(os.devnull, "w")

    def write(self, text):
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._drop()
            return len(text)

    def flush(self):
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._drop()


def train(args, out=None):
    """Run ``sknn train`` with parsed arguments; returns the exit status."""
    out = _KeepGoingOut(sys.stdout if out is None else out)
    from sklearn.metrics import accuracy_score, classification_report
    from sklearn.model_selection import train_test_split

    _check_out_path(args.out)
    if args.plot:
        _check_plot_path(args.plot)
    data = load_data(args)
    if _model_format(args.out) == ".sknn" and not data.is_image \
            and _feature_kinds(data.X, args.data)[1]:
        raise InputError(
            f"--out {args.out!r}: the .sknn format cannot hold the one-hot "
            "encoder that the text columns need; save a .joblib file")
    classes, counts = np.unique(data.y.astype(str) if data.y.dtype == object
                                else data.y, return_counts=True)
    if len(classes) < 2:
        raise InputError(f"the data have a single class ({classes[0]!r}); "
                         "a classifier needs at least two")
    stratify = data.y if counts.min() >= 2 else None
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=args.test_size, random_state=args.seed,
        stratify=stratify)
    print(f"Data: {data.source}: {data.describe()}, {len(classes)} classes; "
          f"training on {len(X_train)}, testing on {len(X_test)}", file=out)
    for note in data.notes:
        print(f"  {note}", file=out)
    model = build_pipeline(args, data)
    steps = " -> ".join(type(step).__name__ for _, step in model.steps[:-1])
    print(f"Model: {steps} -> {model[-1]!r}", file=out)
    out.flush()
    start = time.perf_counter()
    _fit_interruptibly(model, X_train, y_train,
                       standalone=getattr(args, "standalone", False),
                       bar=not args.no_progress)
    clf = model[-1]
    print(_stop_summary(clf, args.epochs, time.perf_counter() - start,
                        show_reason=args.no_progress), file=out)
    y_pred = model.predict(X_test)
    print(f"\nClassification report on the held-out {len(X_test)} samples:",
          file=out)
    print(classification_report(y_test, y_pred, zero_division=0), file=out)
    print(f"Accuracy: {accuracy_score(y_test, y_pred):.4f}", file=out)
    saved = save_model(model, args.out)
    print(f"Saved the fitted Pipeline to {saved}", file=out)
    if args.plot:
        from sknn.plotting import plot_history

        fig = plot_history(clf, args.plot)
        import matplotlib.pyplot as plt

        plt.close(fig)
        print(f"Saved the learning curves to {args.plot}", file=out)
    return 0


def _check_plot_path(path):
    folder = Path(path).parent if str(Path(path).parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"--plot {str(path)!r}: the folder {str(folder)!r} does "
                         "not exist")
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise InputError('--plot needs matplotlib: pip install "sknn[plot]"') from exc


# ----------------------------------------------------------------- prediction
def input_spec(model):
    """How ``sknn predict`` reads files for ``model``, from its fitted steps.

    Returns
    -------
    spec : dict
        ``{'kind': 'image', 'image_shape': (h, w, c), 'max_value': m,
        'n_features': n}`` for a Pipeline that starts with a fitted
        :class:`~sknn.preprocessing.PixelScaler`; otherwise ``{'kind':
        'table', 'feature_names': [...] or None, 'text': [...],
        'categories': {column: known values}, 'n_features': n}``.
    """
    from sknn.preprocessing import PixelScaler

    if isinstance(model, OnnxModel):
        return model.spec_ or {"kind": "table", "feature_names": None, "text": [],
                               "categories": {}, "n_features": model.n_features_in_}
    first = model.steps[0][1] if hasattr(model, "steps") else model
    if isinstance(first, PixelScaler):
        return {"kind": "image", "image_shape": first.image_shape_,
                "max_value": float(first.max_value),
                "n_features": first.n_features_in_}
    names = getattr(model, "feature_names_in_", None)
    text, categories = [], {}
    transformers = getattr(first, "transformers_", [])
    for name, step, columns in transformers:
        if name == "text":
            text = list(columns)
            categories = {c: set(map(str, cats))
                          for c, cats in zip(columns, step.categories_)}
    return {"kind": "table",
            "feature_names": None if names is None else [str(c) for c in names],
            "text": text, "categories": categories,
            "n_features": getattr(model, "n_features_in_", None)}


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


def _labels_and_probs(model, X):
    """The predicted label of each row of X, its probability, and the
    messages of the warnings the model gave (an image unlike the training
    images, for instance)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if isinstance(model, OnnxModel):
            labels, proba = model.labels_and_proba(X)
            best = proba.max(axis=1)
        else:
            proba = model.predict_proba(X)
            index = np.argmax(proba, axis=1)
            labels = np.asarray(model.classes_)[index]
            best = proba[np.arange(len(index)), index]
    return labels, best, [str(w.message) for w in caught]


def _warn_line(path, message):
    print(f"sknn predict: warning: {path}: {message}", file=sys.stderr)


def _predict_images(model, spec, paths, invert):
    """(path, label, probability) rows for image files, and a warning line
    for each image that differs clearly from the training images."""
    from sknn.datasets import load_image

    if spec["kind"] != "image":
        names = spec.get("feature_names") or []
        raise InputError(
            f"{str(paths[0])!r}: this model was trained on CSV columns "
            f"{names[:5]}{'...' if len(names) > 5 else ''}, not images; pass a "
            "CSV file")
    if spec["image_shape"] is None:
        side = int(round(spec["n_features"] ** 0.5))
        if side * side != spec["n_features"]:
            raise InputError(
                f"{str(paths[0])!r}: this model's PixelScaler was fitted on flat "
                f"rows of {spec['n_features']} values, so its image size is "
                "unknown; pass the pixels as CSV rows")
        spec = dict(spec, image_shape=(side, side, 1))
    height, width, channels = spec["image_shape"]
    rows = []
    for path in paths:
        image = load_image(path, size=(height, width), grayscale=channels == 1)
        if invert:
            image = 1.0 - image
        pixels = image[np.newaxis] * np.float32(spec["max_value"])
        label, prob, messages = _labels_and_probs(model, pixels)
        for message in messages:
            if "-on-" in message and not invert:
                message = message.rstrip(".") + "; sknn predict --invert does that."
            _warn_line(path, message)
        original = _image_size(path)
        if original is not None and _distorted(original, (height, width)):
            _warn_line(path, f"the model was trained on {height}x{width} images; "
                             f"this image is {original[0]}x{original[1]}, "
                             f"stretched to {height}x{width}")
        rows.append((str(path), label[0], float(prob[0])))
    return rows


def _image_size(path):
    try:
        from PIL import Image

        with Image.open(path) as img:
            return img.height, img.width
    except Exception:  # load_image has read it; a size is only for a warning
        return None


def _distorted(original, trained):
    """Whether resizing changes the aspect ratio clearly (by more than 1.5x)."""
    ratio = (original[1] / original[0]) / (trained[1] / trained[0])
    return not (1 / 1.5 <= ratio <= 1.5)


def _table_features(frame, spec, path):
    """The model's feature columns of a CSV frame, checked."""
    import pandas as pd

    names = spec["feature_names"]
    n_features = spec["n_features"]
    numbered = list(frame.columns) == [str(i) for i in range(frame.shape[1])]
    if names is not None and all(c in frame.columns for c in names):
        X = frame[names]
    elif (names is None or numbered) and frame.shape[1] == n_features:
        # a file without a header: the feature columns in the training order
        X = frame.copy()
        if names is not None:
            X.columns = names  # the same columns in order, under other names
    elif names is not None:
        missing = [c for c in names if c not in frame.columns]
        raise InputError(
            f"{str(path)!r} lacks the feature columns {missing[:10]} the model "
            f"was trained on (it has {list(frame.columns)[:10]})")
    else:
        raise InputError(f"{str(path)!r} has {frame.shape[1]} columns; the model "
                         f"takes {n_features}")
    numeric = [c for c in X.columns if c not in spec["text"]]
    wrong = [c for c in numeric if not pd.api.types.is_numeric_dtype(X[c])]
    if wrong:
        raise InputError(f"{str(path)!r}: the columns {wrong[:10]} hold text where "
                         "the model was trained on numbers")
    gaps = [c for c in numeric if X[c].isna().any()]
    if gaps:
        raise InputError(f"{str(path)!r}: missing values in the columns "
                         f"{gaps[:10]}; fill them in or drop those rows")
    for column, known in spec["categories"].items():
        unseen = sorted(set(X[column].dropna().astype(str)) - known)
        if unseen:
            _warn_line(path, f"column {column!r} has values the model never saw: "
                             f"{unseen[:5]} (encoded as none of the known ones)")
    return X


def _predict_csv(model, spec, path, header):
    """(prediction, probability) rows for the rows of a CSV file."""
    from sknn.datasets import load_csv

    frame, _ = load_csv(path, target=None, header=header)
    if spec["kind"] == "image":
        X = frame.drop(columns=[c for c in ("label",) if c in frame.columns])
        if X.shape[1] != spec["n_features"]:
            raise InputError(
                f"{str(path)!r} has {X.shape[1]} feature columns; this image "
                f"model expects {spec['n_features']} pixel columns")
        import pandas as pd

        text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        if text:
            raise InputError(f"{str(path)!r}: the pixel columns {text[:10]} hold "
                             "text")
        # rows of raw pixels, as the Pipeline's PixelScaler takes them
        X = X.to_numpy(dtype=np.float32)
    else:
        X = _table_features(frame, spec, path)
    labels, probs, messages = _labels_and_probs(model, X)
    for message in messages:
        _warn_line(path, message)
    return labels, probs


def predict(args, out=None):
    """Run ``sknn predict`` with parsed arguments; returns the exit status."""
    out = sys.stdout if out is None else out
    import pandas as pd

    paths = _expand_inputs(args.inputs)
    csvs = [p for p in paths if p.suffix.lower() in CSV_SUFFIXES]
    images = [p for p in paths if p.suffix.lower() in IMAGE_EXTENSIONS]
    other = [p for p in paths if p not in csvs and p not in images]
    if other:
        raise InputError(
            f"{str(other[0])!r}: unsupported input format; expected image files "
            f"({', '.join(IMAGE_EXTENSIONS)}), folders of them, or .csv files")
    if args.output and (len(csvs) > 1 or (csvs and images)):
        raise InputError("--output takes the images, or one CSV file, at a time")
    if args.output:
        folder = Path(args.output).parent
        if not folder.is_dir():
            raise InputError(f"--output {args.output!r}: the folder "
                             f"{str(folder)!r} does not exist")
    model = load_model(args.model)
    spec = input_spec(model)
    if images:
        rows = _predict_images(model, spec, images, args.invert)
        if args.output:
            table = pd.DataFrame(rows, columns=["path", "prediction", "probability"])
            _write_table(table, args.output)
            print(f"Wrote {len(table)} predictions to {args.output}", file=out)
        else:
            for path, label, prob in rows:
                print(f"{path}\t{label}\t{prob:.4f}", file=out)
    for path in csvs:
        labels, probs = _predict_csv(model, spec, path, args.header)
        table = pd.DataFrame({"prediction": labels, "probability": probs})
        if args.output:
            _write_table(table, args.output)
            print(f"Wrote {len(table)} predictions for {path} to {args.output}",
                  file=out)
        else:
            table.to_csv(out, index=False)
    return 0


def _write_table(table, path):
    atomic_write(path, lambda f: table.to_csv(f, index=False), mode="w")


# ----------------------------------------------------------------------- main
def _one_line(exc):
    text = str(exc).strip()
    if isinstance(exc, KeyError):  # str(KeyError) is the repr of its key
        text = f"missing key {text}"
    return text.splitlines()[0] if text else type(exc).__name__


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"sknn: warning: {_one_line(message)}", file=sys.stderr)


def main(argv=None):
    """Entry point of the ``sknn`` command (and ``python -m sknn``).

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 on success; 2 for bad input (a missing file, an unsupported format,
        a bad column or parameter value), reported in one line on stderr; 130
        after Ctrl-C (nothing is saved); 1 for an unexpected error, also in one
        line (set ``SKNN_TRACEBACK=1`` to see its traceback).
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error
        return int(exc.code or 0)
    command = f"sknn {args.command}"
    args.standalone = argv is None  # the sknn process itself, not a caller
    with warnings.catch_warnings():
        # warnings as one line each, without the source line that Python shows
        warnings.showwarning = _show_warning
        try:
            command_function = {"train": train, "predict": predict,
                                "export": export}[args.command]
            return command_function(args)
        except (InputError, FileNotFoundError, IsADirectoryError, PermissionError,
                NotADirectoryError, ValueError, ImportError) as exc:
            print(f"{command}: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except BrokenPipeError:
            # the reader of stdout went away (sknn predict ... | head): stop
            # quietly, as other command-line tools do
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_BROKEN_PIPE
        except (KeyboardInterrupt, TrainingInterrupted) as exc:
            detail = f" {exc}" if isinstance(exc, TrainingInterrupted) else ""
            saved = "; nothing was saved" if args.command == "train" else ""
            print(f"{command}: interrupted{detail}{saved}", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as exc:
            if os.environ.get("SKNN_TRACEBACK"):
                raise
            print(f"{command}: internal error: {type(exc).__name__}: "
                  f"{_one_line(exc)} (SKNN_TRACEBACK=1 shows the traceback; "
                  "please report it)", file=sys.stderr)
            return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
