#!/usr/bin/env bash
# Build the HTML documentation with warnings as errors. Installs nothing: the
# environment needs the package and its "docs" extra (pip install -e ".[docs]").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
"$PYTHON" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
