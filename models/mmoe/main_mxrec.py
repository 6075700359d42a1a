"""MMoE on census-income TFRecords with mx_rec: train both tasks, report each task's AUC and log loss.

    python models/mmoe/census.py --train_data_path F --test_data_path F --output_path D   # once
    python models/mmoe/main_mxrec.py [--data_path D | DATA_PATH=D] [--epochs 10] [--batch_size 256] ...
    bash models/mmoe/run.sh SO_PATH PKG_PATH RANK_TABLE DATA_PATH      # under horovodrun

Tasks: ``income`` (income > 50K) and ``marital`` (never married), label columns 0 and 1; the
loss is the sum of both tasks' log losses. Every field of ``common.config.TrainConfig`` and
``config.MMoEConfig`` is a flag (``--help``); switches come from the environment.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # models/: the shared ``common`` package

import tensorflow as tf  # noqa: E402

from common.config import parse_configs  # noqa: E402
from common.embedding import TableSpec  # noqa: E402
from common.job import ModelSpec, run_job  # noqa: E402
from common.records import CENSUS_SCHEMA  # noqa: E402

from census import DENSE_COLUMNS, TASKS  # noqa: E402
from config import TRAIN, MMoEConfig  # noqa: E402
from model import TABLE, build_fn, prepare_fn  # noqa: E402

tf.compat.v1.disable_eager_execution()


def main(argv=None) -> int:
    train_cfg, model_cfg = parse_configs(argv, __doc__.split("\n")[0], TRAIN, MMoEConfig())
    spec = ModelSpec(name="mmoe", schema=CENSUS_SCHEMA, tasks=TASKS, tables=(TableSpec(TABLE, model_cfg.table_dim),),
                     build=build_fn(model_cfg, train_cfg.seed), prepare=prepare_fn(model_cfg),
                     extra_keys=len(DENSE_COLUMNS) * model_cfg.dense_buckets)
    run_job(spec, train_cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
