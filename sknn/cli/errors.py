"""Exit statuses and one-line errors and warnings of the ``sknn`` command."""

import os
import sys

#: exit status for bad input (paths, formats, columns, parameter values)
EXIT_BAD_INPUT = 2
#: exit status after Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130
#: exit status for an unexpected error (a bug: please report it)
EXIT_INTERNAL = 1
#: exit status when stdout's reader goes away (128 + SIGPIPE)
EXIT_BROKEN_PIPE = 141

#: the exceptions that mean bad input: one line, exit status 2
BAD_INPUT_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError,
                    PermissionError, NotADirectoryError, ImportError)


class InputError(ValueError):
    """A problem with the user's input that the CLI reports in one line."""


class TrainingInterrupted(Exception):
    """Ctrl-C during training: the model is discarded, nothing is saved."""


#: the exceptions reported without a traceback even under SKNN_TRACEBACK=1
EXPECTED_ERRORS = (*BAD_INPUT_ERRORS, BrokenPipeError, TrainingInterrupted)


def one_line(exc):
    """The first line of an exception's message (or warning's)."""
    text = str(exc).strip()
    if isinstance(exc, KeyError):  # str(KeyError) is the repr of its key
        text = f"missing key {text}"
    return text.splitlines()[0] if text else type(exc).__name__


def warn_line(command, path, message):
    """``sknn <command>: warning: <path>: <message>`` on stderr."""
    print(f"sknn {command}: warning: {path}: {message}", file=sys.stderr)


def show_warning(message, category, filename, lineno, file=None, line=None):
    """A ``warnings.showwarning`` that prints one line, without the source."""
    print(f"sknn: warning: {one_line(message)}", file=sys.stderr)


def exit_status(exc, command):
    """Report an exception that ended ``sknn <command>`` in one line on
    stderr (nothing for a closed stdout); returns the exit status."""
    name = f"sknn {command}"
    if isinstance(exc, BrokenPipeError):
        # the reader of stdout went away (sknn predict ... | head): stop
        # quietly, as other command-line tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    if isinstance(exc, BAD_INPUT_ERRORS):
        print(f"{name}: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if isinstance(exc, (KeyboardInterrupt, TrainingInterrupted)):
        detail = f" {exc}" if isinstance(exc, TrainingInterrupted) else ""
        saved = "; nothing was saved" if command == "train" else ""
        print(f"{name}: interrupted{detail}{saved}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"{name}: internal error: {type(exc).__name__}: {one_line(exc)} "
          "(SKNN_TRACEBACK=1 shows the traceback; please report it)",
          file=sys.stderr)
    return EXIT_INTERNAL
