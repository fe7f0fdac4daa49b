"""``sknn predict``: its options, and reading image and CSV files for a model."""

import sys
import warnings
from pathlib import Path

from sknn.cli import args as types
from sknn.cli.data import CSV_SUFFIXES
from sknn.cli.errors import InputError, warn_line
from sknn.cli.models import is_regressor_model, load_model

#: an image this many times larger or smaller than the training images (in
#: height or width), or with an aspect ratio this many times off, is resized
#: with a warning
SIZE_FACTOR = 1.5


def add_parser(subparsers):
    """Add ``sknn predict`` and its options to the ``sknn`` parser."""
    predict = subparsers.add_parser(
        "predict", help="predict image files or CSV rows with a saved model",
        description="Print the predicted label and its probability for each "
                    "image file (folders are searched for images), or the "
                    "predictions for the rows of a CSV file. A regressor's "
                    "predictions are numbers: '<row>\\t<value>' lines (a "
                    "value per output), or with --output a CSV file with a "
                    "'prediction' column ('prediction_<i>' for several "
                    "outputs). For a model "
                    "trained on images, CSV rows are pixel values on the "
                    "training data's scale (0-16 for the digits, 0-255 for "
                    "MNIST). A line on stderr warns when an image differs "
                    "clearly from the training images (size, colour, value "
                    "range, polarity).")
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
    types.header_flags(predict)
    predict.set_defaults(func=run)


def _warn(path, message):
    warn_line("predict", path, message)


def _spec(model):
    """How to read files for the model (:func:`sknn._pipeline.input_spec`)."""
    from sknn._onnx_runtime import OnnxModel
    from sknn._pipeline import input_spec

    return model.input_spec_ if isinstance(model, OnnxModel) else input_spec(model)


def _expand_inputs(inputs):
    """Input paths with folders replaced by the image files inside them."""
    from sknn.datasets import IMAGE_EXTENSIONS

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
    images, for instance). For a regressor: its float64 predictions, 1-D or
    one column per output, and None."""
    import numpy as np

    from sknn._onnx_runtime import OnnxModel

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if is_regressor_model(model):
            labels = np.asarray(model.predict(X), dtype=np.float64)
            best = None
        elif isinstance(model, OnnxModel):
            labels, proba = model.labels_and_proba(X)
            best = proba.max(axis=1)
        else:
            proba = model.predict_proba(X)
            index = np.argmax(proba, axis=1)
            labels = np.asarray(model.classes_)[index]
            best = proba[np.arange(len(index)), index]
    return labels, best, [str(w.message) for w in caught]


# ---------------------------------------------------------------------- images
def _image_shape(spec, path):
    """(height, width, channels) of the model's images."""
    if spec["image_shape"] is not None:
        return spec["image_shape"]
    side = int(round(spec["n_features"] ** 0.5))
    if side * side != spec["n_features"]:
        raise InputError(
            f"{str(path)!r}: this model's PixelScaler was fitted on flat rows of "
            f"{spec['n_features']} values, so its image size is unknown; pass the "
            "pixels as CSV rows")
    return side, side, 1


def size_warning(original, trained):
    """What resizing an image of ``original`` (height, width) to the model's
    ``trained`` size changes clearly, as a message, or None.

    Another aspect ratio (stretched by more than :data:`SIZE_FACTOR`), or
    another scale (more than :data:`SIZE_FACTOR` times larger or smaller):
    a 28x28 MNIST-style digit given to a model of the 8x8 digits, say.
    """
    (h0, w0), (h, w) = original, trained
    if (h0, w0) == (h, w):
        return None
    trained_on = f"the model was trained on {h}x{w} images; this image is {h0}x{w0}"
    aspect = (w0 / h0) / (w / h)
    if not 1 / SIZE_FACTOR <= aspect <= SIZE_FACTOR:
        return f"{trained_on}, stretched to {h}x{w}"
    if max(h0 / h, w0 / w) > SIZE_FACTOR:
        return f"{trained_on}, shrunk to {h}x{w}, which loses detail"
    if max(h / h0, w / w0) > SIZE_FACTOR:
        return f"{trained_on}, enlarged to {h}x{w}, which blurs it"
    return None


def _image_size(path):
    try:
        from PIL import Image

        with Image.open(path) as img:
            return img.height, img.width
    except Exception:  # load_image has read it; a size is only for a warning
        return None


def _predict_images(model, spec, paths, invert):
    """(path, label, probability) rows for image files, and a warning line
    for each image that differs clearly from the training images."""
    import numpy as np

    from sknn.datasets import load_image

    if spec["kind"] != "image":
        names = spec.get("feature_names") or []
        raise InputError(
            f"{str(paths[0])!r}: this model was trained on CSV columns "
            f"{names[:5]}{'...' if len(names) > 5 else ''}, not images; pass a "
            "CSV file")
    height, width, channels = _image_shape(spec, paths[0])
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
            _warn(path, message)
        original = _image_size(path)
        message = original and size_warning(original, (height, width))
        if message:
            _warn(path, message)
        rows.append((str(path), label[0], None if prob is None else float(prob[0])))
    return rows


# ------------------------------------------------------------------------- CSV
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
            _warn(path, f"column {column!r} has values the model never saw: "
                        f"{unseen[:5]} (encoded as none of the known ones)")
    return X


def _predict_csv(model, spec, path, header):
    """(predictions, probabilities) for the rows of a CSV file (a
    regressor's: (values, None))."""
    import numpy as np
    import pandas as pd

    from sknn.datasets import load_csv

    frame, _ = load_csv(path, target=None, header=header)
    if spec["kind"] == "image":
        X = frame.drop(columns=[c for c in ("label",) if c in frame.columns])
        if X.shape[1] != spec["n_features"]:
            raise InputError(
                f"{str(path)!r} has {X.shape[1]} feature columns; this image "
                f"model expects {spec['n_features']} pixel columns")
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
        _warn(path, message)
    return labels, probs


# ------------------------------------------------------------------------- run
def _value_columns(values):
    """A regressor's predictions as columns: ``prediction``, or
    ``prediction_<i>`` for each of several outputs."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        return {"prediction": values}
    return {f"prediction_{i}": values[:, i] for i in range(values.shape[1])}


def _value_text(value):
    """A prediction as text that reads back as the same float64 (one value,
    or one per output separated by tabs)."""
    import numpy as np

    return "\t".join(repr(float(v)) for v in np.atleast_1d(value))


def _write_table(table, path):
    from sknn._persistence import atomic_write

    # a device or FIFO (/dev/stdout, a pipe) is written directly
    atomic_write(path, lambda f: table.to_csv(f, index=False), mode="w",
                 special="direct")


def run(args, out=None):
    """Run ``sknn predict`` with parsed arguments; returns the exit status."""
    import pandas as pd

    from sknn.datasets import IMAGE_EXTENSIONS

    out = sys.stdout if out is None else out
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
    spec = _spec(model)
    if is_regressor_model(model):
        return _write_values(model, spec, args, images, csvs, out)
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


def _write_values(model, spec, args, images, csvs, out):
    """``sknn predict`` for a regressor: '<row>\\t<value>' lines on stdout, or
    a CSV file of ``prediction`` (``prediction_<i>``) columns."""
    import numpy as np
    import pandas as pd

    if images:
        rows = _predict_images(model, spec, images, args.invert)
        paths = [path for path, _, _ in rows]
        values = np.stack([value for _, value, _ in rows])
        if args.output:
            table = pd.DataFrame({"path": paths, **_value_columns(values)})
            _write_table(table, args.output)
            print(f"Wrote {len(table)} predictions to {args.output}", file=out)
        else:
            for path, value in zip(paths, values):
                print(f"{path}\t{_value_text(value)}", file=out)
    for path in csvs:
        values, _ = _predict_csv(model, spec, path, args.header)
        if args.output:
            table = pd.DataFrame(_value_columns(values))
            _write_table(table, args.output)
            print(f"Wrote {len(table)} predictions for {path} to {args.output}",
                  file=out)
        else:
            prefix = f"{path}:" if len(csvs) > 1 else ""
            for row, value in enumerate(values):
                print(f"{prefix}{row}\t{_value_text(value)}", file=out)
    return 0
