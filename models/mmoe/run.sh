#!/usr/bin/env bash
# Launch MMoE: the repository's run.sh with MODEL=mmoe.
#
#   bash run.sh SO_PATH PKG_PATH HCCL_JSON DATA_PATH [IP]
#
# DATA_PATH: census TFRecords (train/, test/, meta.json) from census.py in this folder.
# Extra flags go in MODEL_ARGS, e.g. MODEL_ARGS="--epochs 2 --batch_size 512".
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODEL=mmoe exec bash "$HERE/../../run.sh" "$@"
