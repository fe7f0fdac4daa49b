#!/usr/bin/env bash
# Build the HTML documentation with warnings as errors. Installs nothing: the
# environment needs the package and its "docs" extra (pip install -e ".[docs]").
#
# sphinx-gallery runs every example in full (about a minute for all of them on
# two cores, on scikit-learn's digits unless SKNN_MNIST names a copy of MNIST),
# so that the pages show what the scripts really print and draw. It reruns only
# the examples that changed since the last build (docs/auto_examples keeps
# their output). For a quick check of the build alone:
#     SKNN_EXAMPLE_TINY=1 bash docs/build.sh
# runs them on 60 to 400 samples for one to three epochs, and every
# output and figure of those pages then says beside it that it is a tiny run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
export SKNN_EXAMPLE_TINY="${SKNN_EXAMPLE_TINY:-0}"
export MPLBACKEND=Agg
"$PYTHON" -m sphinx -W --keep-going -b html docs docs/_build/html "$@"
