"""Merge an N-rank mx_rec checkpoint into a single-node inference model.

    python tools/export_local.py --checkpoint CKPT_DIR_OR_PREFIX --output MODEL_DIR \\
        [--meta_graph FILE] [--memory_budget_mb MB]

The dense graph of the training job's ``.meta`` (cut at its ``sparse_lookup`` outputs and at the
batch entries given to ``mx_rec.inference.set_prediction``) with its weights frozen, and every
table's shards merged into sorted keys and rows (optimizer slots and admission counts dropped).
Tables larger than ``--memory_budget_mb`` (default: a quarter of RAM) are merged key range by
key range, and ``load_inference_model`` memory-maps them. The model needs neither Horovod nor
the training code: ``tools/predict_local.py`` or ``mx_rec.inference.load_inference_model``.
"""
import os
import sys
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mx_rec.inference.export import export_local  # noqa: E402
from mx_rec.inference.freeze import ExportError  # noqa: E402
from mx_rec.saver.layout import CheckpointError  # noqa: E402
from tools.export_args import budget_bytes, export_parser  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = export_parser(__doc__.split("\n")[0], "model").parse_args(argv)
    budget = budget_bytes(args)
    try:
        report = export_local(args.checkpoint, args.output, args.meta_graph, budget)
    except (ExportError, CheckpointError) as err:
        print(f"export_local.py: error: {err}", file=sys.stderr)
        return 2
    for name, stats in report.tables.items():
        print(f"table {name}: {stats.keys} keys of dim {stats.dim} ({stats.buckets} key range(s))")
    print(f"exported {report.prefix} to {report.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
