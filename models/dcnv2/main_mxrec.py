"""DCNv2 on Criteo TFRecords with mx_rec: train, then report AUC, log loss and samples/s.

    python models/dcnv2/main_mxrec.py [--data_path D | DATA_PATH=D] [--epochs 1] [--batch_size 1024] ...
    bash models/dcnv2/run.sh SO_PATH PKG_PATH RANK_TABLE DATA_PATH      # under horovodrun

Every field of ``common.config.TrainConfig`` and ``config.DCNv2Config`` is a flag (``--help``);
the switches (``USE_DYNAMIC``, ``USE_FAAE``, ...) come from the environment (``common.switches``).
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

from config import TRAIN, DCNv2Config  # noqa: E402
from model import TABLE, build_fn  # noqa: E402

tf.compat.v1.disable_eager_execution()


def main(argv=None) -> int:
    train_cfg, model_cfg = parse_configs(argv, __doc__.split("\n")[0], TRAIN, DCNv2Config())
    spec = ModelSpec(name="dcnv2", schema=CRITEO_SCHEMA, tasks=("ctr",),
                     tables=(TableSpec(TABLE, model_cfg.emb_dim),), build=build_fn(model_cfg, train_cfg.seed))
    run_job(spec, train_cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
