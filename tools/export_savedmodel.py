"""Export an mx_rec checkpoint as a TF2 SavedModel that plain TensorFlow, TF Serving or Triton serve.

    python tools/export_savedmodel.py --checkpoint CKPT_DIR_OR_PREFIX --output SAVEDMODEL_DIR \\
        [--meta_graph FILE] [--memory_budget_mb MB] [--row_dtype float32|float16]

Signature ``serving_default``: the batch entries given to ``mx_rec.inference.set_prediction`` by
name (any batch size) -> ``{"prediction": ...}``. Tables become sorted keys and rows in the
SavedModel's ``variables/``, looked up with stock TF ops (binary search + gather): ``-1`` reads
zeros, unknown keys read the lookup's ``serving_default_value`` (zeros when unset). The model
needs neither mx_rec nor Horovod: ``tf.saved_model.load``, ``saved_model_cli``, TF Serving.
Tables larger than ``--memory_budget_mb`` (default: a quarter of RAM) are merged and written
key range by key range.
"""
import os
import sys
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mx_rec.inference.freeze import ExportError  # noqa: E402
from mx_rec.inference.saved_model import ROW_DTYPES, export_savedmodel  # noqa: E402
from mx_rec.saver.layout import CheckpointError  # noqa: E402
from tools.export_args import budget_bytes, export_parser  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = export_parser(__doc__.split("\n")[0], "SavedModel")
    parser.add_argument("--row_dtype", choices=ROW_DTYPES, default="float32",
                        help="how rows are stored (float16: half the size, cast to float32 in the graph)")
    args = parser.parse_args(argv)
    budget = budget_bytes(args)
    try:
        report = export_savedmodel(args.checkpoint, args.output, args.meta_graph, budget, args.row_dtype)
    except (ExportError, CheckpointError) as err:
        print(f"export_savedmodel.py: error: {err}", file=sys.stderr)
        return 2
    for name, stats in report.tables.items():
        print(f"table {name}: {stats.keys} keys of dim {stats.dim} ({stats.buckets} key range(s), rows "
              f"{args.row_dtype})")
    batch = f"chunks of {report.chunk_batch}" if report.chunk_batch else "any batch size in one call"
    print(f"exported {report.prefix} to {report.output} (serving_default: {batch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
