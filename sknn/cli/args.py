"""argparse value types and the options the commands share."""

import argparse

from sknn.cli.errors import EXIT_BAD_INPUT


class Parser(argparse.ArgumentParser):
    """argparse with usage errors in one line (the usage is one --help away)."""

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see "
                                  f"{self.prog} --help)\n")


def int_list(text):
    """``'512,256'`` -> ``(512, 256)``: comma-separated positive integers."""
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


def fraction(text):
    """A number strictly between 0 and 1."""
    return _number(text, 0, 1, True, True, "a fraction strictly between 0 and 1")


def dropout(text):
    """A number in [0, 1)."""
    return _number(text, 0, 1, False, True, "a fraction in [0, 1)")


def unit(text):
    """A number in [0, 1]."""
    return _number(text, 0, 1, False, False, "a number in [0, 1]")


def non_negative(text):
    """A number >= 0."""
    return _number(text, 0, float("inf"), False, True, "a number >= 0")


def positive_float(text):
    """A number > 0."""
    return _number(text, 0, float("inf"), True, True, "a positive number")


def positive_int(text):
    """An integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def header_flags(parser):
    """``--header`` / ``--no-header`` for a command that reads CSV files."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--header", dest="header", action="store_const", const=True,
                       default="infer",
                       help="the CSV's first line holds the column names")
    group.add_argument("--no-header", dest="header", action="store_const",
                       const=False,
                       help="the CSV has no header line: its first line is data "
                            "(default: detected; a first line with numbers in it "
                            "is data)")
