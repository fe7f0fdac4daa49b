"""The ``sknn`` command line: ``sknn train``, ``sknn predict``, ``sknn export``.

``sknn train`` loads data (scikit-learn's digits by default, or an
``mnist.npz``, an MNIST IDX folder, an image folder or a CSV file), fits a
Pipeline with a per-epoch progress bar, prints scikit-learn's classification
report on a held-out split and saves the fitted Pipeline; a CSV's
continuous target trains an :class:`~sknn.MLPRegressorTorch` instead, reported
by R^2, MAE and RMSE (:mod:`sknn.cli.regression`). ``sknn predict``
loads that file and predicts image files or CSV rows; ``sknn export`` writes
it as ONNX or in sknn's pickle-free ``.sknn`` format.

The saved Pipeline is the whole recipe: for images it starts with a
:class:`~sknn.preprocessing.PixelScaler` (flattening, ``/ max_value``), for
tables with the scaler (and one-hot encoder) the command fitted, so
``joblib.load(path).predict(X)`` takes the arrays exactly as
:mod:`sknn.datasets` returns them. Everything ``sknn predict`` needs to read a
new file (image size, grayscale, pixel scale, CSV columns) is read from the
Pipeline's own fitted attributes, or from an ONNX file's metadata.

Bad input never ends in a traceback: it is one line on stderr and exit
status 2. Ctrl-C ends with status 130 and saves nothing.

Each command is a module of this package with its options and its run
(``add_parser(subparsers)`` sets ``func``): :mod:`sknn.cli.train`,
:mod:`sknn.cli.predict`, :mod:`sknn.cli.export`; :mod:`sknn.cli.errors`
holds the exit statuses, :mod:`sknn.cli.models` the model files,
:mod:`sknn.cli.data` the training data, :mod:`sknn.cli.args` the option types.
"""

import os
import warnings

from sknn.cli import export, predict, train
from sknn.cli.args import Parser
from sknn.cli.errors import EXPECTED_ERRORS, exit_status, show_warning

__all__ = ["build_parser", "main"]

#: the commands, in the order ``sknn --help`` lists them
COMMANDS = (train, predict, export)


def build_parser():
    """The argparse parser of the ``sknn`` command.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    import sknn

    parser = Parser(
        prog="sknn",
        description="Train and use scikit-learn neural-network classifiers "
                    "and regressors (PyTorch via skorch) from the command "
                    "line.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {sknn.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,predict,export}")
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


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
    args.standalone = argv is None  # the sknn process itself, not a caller
    with warnings.catch_warnings():
        # warnings as one line each, without the source line that Python shows
        warnings.showwarning = show_warning
        try:
            return args.func(args)
        except Exception as exc:
            if os.environ.get("SKNN_TRACEBACK") and not isinstance(
                    exc, EXPECTED_ERRORS):
                raise
            return exit_status(exc, args.command)
        except KeyboardInterrupt as exc:
            return exit_status(exc, args.command)
