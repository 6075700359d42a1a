#!/usr/bin/env bash
# mx_rec job launcher (SPEC section 6), as in Rec SDK:
#
#   bash run.sh SO_PATH PKG_PATH HCCL_JSON DATA_PATH [IP]
#
#   SO_PATH    folder of native op libraries (prepended to LD_LIBRARY_PATH; may be empty)
#   PKG_PATH   the installed mx_rec package folder (its parent is prepended to PYTHONPATH)
#   HCCL_JSON  HCCL rank table (version 1.0 or 2.0); its rank count = number of processes
#   DATA_PATH  data folder (TFRecords with train/ and test/), exported as DATA_PATH (and
#              DLRM_CRITEO_DATA_PATH); checked against models/$MODEL/data_layout.txt before any rank starts
#   IP         optional: rank-table-free scheme; needs CM_CHIEF_IP, CM_CHIEF_PORT,
#              CM_WORKER_IP, CM_WORKER_SIZE (HCCL_JSON is then ignored)
#
# Environment: MODEL (default dlrm), MODEL_ARGS (extra arguments for main_mxrec.py), feature
# switches USE_DYNAMIC, CACHE_MODE, USE_FAAE, USE_DYNAMIC_EXPANSION, USE_MULTI_LOOKUP,
# USE_MODIFY_GRAPH, TRAIN_RANK_SIZE; PYTHON (interpreter, default .venv/bin/python, else python3), HOROVODRUN,
# HOROVODRUN_ARGS, MXREC_DRY_RUN=1 (print the plan only).
#
# Every rank gets OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK, _LOCAL_SIZE and RANK_ID (Rec SDK scripts
# shard their datasets with them). Switch defaults are those of Rec SDK's model run.sh (USE_DYNAMIC=0).
# All checks and the horovodrun command line live in mx_rec_py/mx_rec/launch (python -m mx_rec.launch).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEFAULT_PYTHON=python3
[ -x "$ROOT/.venv/bin/python" ] && DEFAULT_PYTHON="$ROOT/.venv/bin/python"  # made by tools/bootstrap.sh
PYTHON="${PYTHON:-$DEFAULT_PYTHON}"
CALLER_PYTHONPATH="${PYTHONPATH:-}"
PYTHONPATH="$ROOT/mx_rec_py${CALLER_PYTHONPATH:+:$CALLER_PYTHONPATH}" \
    exec "$PYTHON" -m mx_rec.launch --repo "$ROOT" --caller-pythonpath "$CALLER_PYTHONPATH" -- "$@"
