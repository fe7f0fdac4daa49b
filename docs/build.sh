#!/usr/bin/env bash
# Build the HTML documentation with warnings as errors. Installs nothing: the
# environment needs the package and its "docs" extra (pip install -e ".[docs]").
# sphinx-gallery runs the examples in tiny mode (seconds each); for the full
# runs and their figures: SKNN_EXAMPLE_TINY=0 bash docs/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export SKNN_EXAMPLE_TINY="${SKNN_EXAMPLE_TINY:-1}"
export MPLBACKEND=Agg
"$PYTHON" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
