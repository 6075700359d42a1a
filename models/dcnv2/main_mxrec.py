"""DCNv2 on Criteo TFRecords with mx_rec: train, then report AUC, log loss and samples/s.

    python models/dcnv2/main_mxrec.py [--data_path D | DATA_PATH=D] [--epochs 1] [--batch_size 1024] ...
    bash models/dcnv2/run.sh SO_PATH PKG_PATH RANK_TABLE DATA_PATH      # under horovodrun

DCNv2 trains exactly as DLRM does (same data, one table of the 26 fields, the same SDK calls): this
script runs ``models/dlrm/main_mxrec.py`` (read that one for the Rec SDK usage) with the cross
network of ``model.py`` and the settings of ``config.py``. Every field of
``models.common.config.TrainConfig`` and ``config.DCNv2Config`` is a flag (``--help``).
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from models.dcnv2.config import TRAIN, DCNv2Config  # noqa: E402
from models.dcnv2.model import build_fn  # noqa: E402
from models.dlrm.main_mxrec import main as train_criteo_model  # noqa: E402


def main(argv=None) -> int:
    return train_criteo_model(argv, name="dcnv2", description=__doc__.split("\n")[0], train=TRAIN,
                              model_config=DCNv2Config(), build_model=build_fn)


if __name__ == "__main__":
    sys.exit(main())
