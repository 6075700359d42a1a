#!/usr/bin/env bash
# Launch the little demo: the repository's run.sh with MODEL=little_demo.
#
#   bash run.sh SO_PATH PKG_PATH HCCL_JSON DATA_PATH [IP]
#
# The demo makes its own synthetic data, but DATA_PATH must still be an existing folder.
# Extra demo flags go in MODEL_ARGS, e.g. MODEL_ARGS="--steps 100 --batch_size 256".
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODEL=little_demo exec bash "$HERE/../../run.sh" "$@"
