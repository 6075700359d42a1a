#!/usr/bin/env bash
# Launch Wide&Deep: the repository's run.sh with MODEL=wide_deep.
#
#   bash run.sh SO_PATH PKG_PATH HCCL_JSON DATA_PATH [IP]
#
# DATA_PATH: Criteo TFRecords (train/, test/, meta.json) from tools/criteo/convert.py or
# tools/criteo/synthetic.py. Extra flags go in MODEL_ARGS, e.g. MODEL_ARGS="--epochs 2 --batch_size 512".
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODEL=wide_deep exec bash "$HERE/../../run.sh" "$@"
