"""Wide&Deep on Criteo TFRecords with mx_rec: train, then report AUC, log loss and samples/s.

    python models/wide_deep/main_mxrec.py [--data_path D | DATA_PATH=D] [--epochs 1] [--batch_size 1024] ...
    bash models/wide_deep/run.sh SO_PATH PKG_PATH RANK_TABLE DATA_PATH      # under horovodrun

Two tables over the same ids: ``wide_table`` (dim 1, FTRL) and ``deep_table`` (``--emb_dim``,
``--sparse_optimizer``). Every field of ``common.config.TrainConfig`` and
``config.WideDeepConfig`` is a flag (``--help``); switches come from the environment.
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
from common.records import CRITEO_SCHEMA  # noqa: E402

from config import TRAIN, WideDeepConfig  # noqa: E402
from model import DEEP_TABLE, WIDE_TABLE, build_fn  # noqa: E402

tf.compat.v1.disable_eager_execution()


def main(argv=None) -> int:
    train_cfg, model_cfg = parse_configs(argv, __doc__.split("\n")[0], TRAIN, WideDeepConfig())
    tables = (TableSpec(WIDE_TABLE, 1, optimizer=model_cfg.wide_optimizer, learning_rate=model_cfg.wide_lr,
                        init_stddev=1e-4),
              TableSpec(DEEP_TABLE, model_cfg.emb_dim))
    spec = ModelSpec(name="wide_deep", schema=CRITEO_SCHEMA, tasks=("ctr",), tables=tables,
                     build=build_fn(model_cfg, train_cfg.seed))
    run_job(spec, train_cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
