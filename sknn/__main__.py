"""``python -m sknn``: the command line."""

import sys

from sknn.cli import main

if __name__ == "__main__":
    sys.exit(main())
