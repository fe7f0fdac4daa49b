"""``sknn train``: its options, the Pipeline it fits, the fit and the report.

A numeric CSV target may train a regressor instead (:mod:`sknn.cli.regression`
chooses the task and holds the regressor's parts)."""

import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

from sknn import _options
from sknn.cli import args as types
from sknn.cli import regression
from sknn.cli.data import feature_kinds, load_data
from sknn.cli.errors import EXIT_INTERRUPTED, InputError, TrainingInterrupted
from sknn.cli.models import check_out_path, model_format, save_model

DEFAULT_EPOCHS = 30


def add_parser(subparsers):
    """Add ``sknn train`` and its options to the ``sknn`` parser."""
    train = subparsers.add_parser(
        "train", help="fit a model, print a classification or regression "
                      "report, save it",
        description="Fit a Pipeline (pixel scaling or column scaling, then an "
                    "sknn classifier, or a regressor for a CSV's continuous "
                    "target), show the progress per epoch, print the "
                    "classification report (or R^2, MAE and RMSE) on a "
                    "held-out split and save the fitted Pipeline. Keras users: "
                    "--solver sgd --momentum 0 is SGD(); Keras' l2(L) at batch "
                    "size B is --alpha 2*L*B.")
    data = train.add_argument_group("data")
    data.add_argument(
        "--data", metavar="PATH",
        help="an mnist.npz, an MNIST IDX folder, an image folder "
             "(PATH/<class>/*.png|jpg|jpeg|bmp) or a CSV file with a label "
             "column; default: scikit-learn's 8x8 digits (MNIST where the "
             "SKNN_MNIST environment variable names a copy)")
    data.add_argument("--target", metavar="NAME", default="label",
                      help="label column of a CSV file: a name, or a position "
                           "such as -1 for the last column (default: label)")
    data.add_argument("--task", choices=regression.TASKS,
                      help="what to train on a CSV's target: a classifier or "
                           "an MLPRegressorTorch (default: guessed from the "
                           "target: continuous numbers train a regressor, text "
                           "or a few distinct values a classifier; images "
                           "always train a classifier)")
    types.header_flags(data)
    data.add_argument("--image-size", type=types.int_list, default=(32, 32),
                      metavar="H,W",
                      help="size image-folder images are resized to "
                           "(default: 32,32)")
    data.add_argument("--grayscale", action="store_true",
                      help="read image-folder images as one channel")
    data.add_argument("--test-size", type=types.fraction, default=0.25,
                      metavar="F",
                      help="held-out fraction for the report (default: 0.25)")

    net = train.add_argument_group("network")
    net.add_argument("--model", choices=("mlp", "cnn"), default="mlp",
                     help="MLPClassifierTorch or CNNClassifier (default: mlp)")
    net.add_argument("--hidden", type=types.int_list, metavar="512,256",
                     help="hidden layer sizes (for cnn: the dense layers after "
                          "the convolutions); default: the estimator's")
    net.add_argument("--conv", type=types.int_list, metavar="32,64,64",
                     help="convolution filters per block (cnn only)")
    net.add_argument("--activation", choices=_options.ACTIVATIONS,
                     help="hidden-layer activation (default: relu)")
    net.add_argument("--dropout", type=types.dropout, metavar="P",
                     help="dropout rate after each hidden layer, Keras' "
                          "Dropout(P) (default: 0)")
    net.add_argument("--weight-init", choices=_options.WEIGHT_INITS, metavar="NAME",
                     help="weight initialiser: " + ", ".join(_options.WEIGHT_INITS)
                          + " (default: auto, scikit-learn's); truncated_normal "
                          "is Keras' TruncatedNormal(stddev=0.05)")

    fit = train.add_argument_group("training")
    fit.add_argument("--epochs", type=types.positive_int, default=DEFAULT_EPOCHS,
                     metavar="N",
                     help=f"maximum number of epochs (default: {DEFAULT_EPOCHS})")
    fit.add_argument("--batch-size", type=types.positive_int, metavar="N",
                     help="mini-batch size (default: min(200, n_samples))")
    fit.add_argument("--solver", choices=_options.STOCHASTIC_SOLVERS,
                     default="adam", help="optimizer (default: adam)")
    fit.add_argument("--lr", type=types.positive_float, default=1e-3, metavar="X",
                     help="initial learning rate (default: 0.001)")
    fit.add_argument("--momentum", type=types.unit, metavar="M",
                     help="SGD momentum (default: 0.9, scikit-learn's, with "
                          "Nesterov); Keras' SGD() is --momentum 0")
    fit.add_argument("--no-nesterov", action="store_true",
                     help="plain momentum instead of Nesterov's, as Keras' "
                          "SGD(momentum=M)")
    fit.add_argument("--alpha", type=types.non_negative, metavar="A",
                     help="L2 penalty, scikit-learn's alpha (default: 0.0001); "
                          "Keras' l2(L) at batch size B is alpha = 2*L*B")
    fit.add_argument("--early-stopping", action="store_true",
                     help="validate every epoch on a held-out part of the "
                          "training data and stop when the validation accuracy "
                          "(R^2 for a regressor) stalls (the best epoch's "
                          "weights are kept)")
    fit.add_argument("--validation-fraction", type=types.fraction, metavar="F",
                     help="hold out F of the training data and report "
                          "val_loss/val_accuracy every epoch, as Keras' "
                          "validation_split (default with --early-stopping: 0.1)")
    fit.add_argument("--patience", type=types.positive_int, metavar="N",
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
    train.set_defaults(func=run)


# ------------------------------------------------------------------- the model
def _estimator(args, data, task="classification"):
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
    if task == "regression":
        if args.model != "mlp":
            raise InputError("--model cnn trains a classifier of images; a "
                             "regressor is an MLP (leave out --model cnn)")
        if args.conv is not None:
            raise InputError("--conv applies to --model cnn only")
        if args.hidden is not None:
            common["hidden_layer_sizes"] = args.hidden
        return regression.estimator(common)
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


def build_pipeline(args, data, task="classification"):
    """The unfitted Pipeline for the data: every step between the loaded
    arrays and the classifier (or regressor) is in it."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    clf = _estimator(args, data, task)
    name = "reg" if task == "regression" else "clf"
    if data.is_image:
        from sknn.preprocessing import PixelScaler

        return Pipeline([("pixels", PixelScaler(max_value=data.max_value)),
                         ("scaler", StandardScaler()), (name, clf)])
    numeric, text = feature_kinds(data.X, args.data)
    if not text:
        return Pipeline([("scaler", StandardScaler()), (name, clf)])
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    columns = ColumnTransformer([
        ("numeric", StandardScaler(), numeric),
        ("text", OneHotEncoder(handle_unknown="ignore", sparse_output=False), text),
    ])
    return Pipeline([("columns", columns), (name, clf)])


# --------------------------------------------------------------------- the fit
def _fit_interruptibly(model, X, y, standalone=False, bar=False):
    """Fit; Ctrl-C ends the command with status 130 and saves nothing.

    The command's own SIGINT handler records each Ctrl-C, so whether the fit
    was interrupted is known here, whatever the estimator did with the
    ``KeyboardInterrupt`` (it catches one to keep the model trained so far,
    as scikit-learn does). In the ``sknn`` process itself (``standalone``)
    Ctrl-C ends the process at once: nothing is being written during the
    fit. When ``main`` is called from Python, :class:`TrainingInterrupted`
    is raised instead.
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
    if pressed:
        n = getattr(model[-1], "n_iter_", 0)
        raise TrainingInterrupted(f"after {n} epoch{'s' if n != 1 else ''}")
    for w in caught:
        # the progress bar and the summary line say that all epochs ran
        if not issubclass(w.category, ConvergenceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


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


# ------------------------------------------------------------------ the outputs
def _check_output(path):
    """Check before training that the model can be written to ``path``, so
    that a read-only or full disk, a directory or a device fails now, not
    after the fit. ``check_out_path`` has already checked the suffix."""
    from sknn._persistence import check_writable

    check_writable(path)


def _check_plot_path(path):
    folder = Path(path).parent if str(Path(path).parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"--plot {str(path)!r}: the folder {str(folder)!r} does "
                         "not exist")
    from sknn._deps import require

    require("matplotlib", "--plot")


def run(args, out=None):
    """Run ``sknn train`` with parsed arguments; returns the exit status."""
    import numpy as np

    out = _KeepGoingOut(sys.stdout if out is None else out)
    from sklearn.metrics import accuracy_score, classification_report
    from sklearn.model_selection import train_test_split

    check_out_path(args.out)
    _check_output(args.out)
    if args.plot:
        _check_plot_path(args.plot)
    data = load_data(args)
    if model_format(args.out) == ".sknn" and not data.is_image \
            and feature_kinds(data.X, args.data)[1]:
        raise InputError(
            f"--out {args.out!r}: the .sknn format cannot hold the one-hot "
            "encoder that the text columns need; save a .joblib file")
    task, announcement = regression.choose_task(
        data, getattr(args, "task", None), data.target)
    if task == "regression":
        stratify, described = None, ""
    else:
        classes, counts = np.unique(data.y.astype(str) if data.y.dtype == object
                                    else data.y, return_counts=True)
        if len(classes) < 2:
            raise InputError(f"the data have a single class ({classes[0]!r}); "
                             "a classifier needs at least two")
        stratify = data.y if counts.min() >= 2 else None
        described = f", {len(classes)} classes"
    X_train, X_test, y_train, y_test = train_test_split(
        data.X, data.y, test_size=args.test_size, random_state=args.seed,
        stratify=stratify)
    print(f"Data: {data.source}: {data.describe()}{described}; "
          f"training on {len(X_train)}, testing on {len(X_test)}", file=out)
    for note in data.notes:
        print(f"  {note}", file=out)
    if announcement:
        print(announcement, file=out)
    model = build_pipeline(args, data, task)
    if task == "regression":
        # trained on the standardized target, predicting in its units
        y_fit, mean, std = regression.standardize(y_train, data.target)
    else:
        y_fit = y_train
    steps = " -> ".join(type(step).__name__ for _, step in model.steps[:-1])
    print(f"Model: {steps} -> {model[-1]!r}", file=out)
    start = time.perf_counter()
    _fit_interruptibly(model, X_train, y_fit,
                       standalone=getattr(args, "standalone", False),
                       bar=not args.no_progress)
    clf = model[-1]
    print(_stop_summary(clf, args.epochs, time.perf_counter() - start,
                        show_reason=args.no_progress), file=out)
    if task == "regression":
        regression.fold_target_scale(clf, mean, std)
        regression.report(y_test, model.predict(X_test), out)
    else:
        y_pred = model.predict(X_test)
        print(f"\nClassification report on the held-out {len(X_test)} "
              "samples:", file=out)
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
