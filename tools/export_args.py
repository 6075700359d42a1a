"""The command line that the export tools share (``export_local.py``, ``export_savedmodel.py``)."""
import argparse
from typing import Optional


def export_parser(description: str, what: str) -> argparse.ArgumentParser:
    """A parser with ``--checkpoint``, ``--output`` (a ``what`` folder), ``--meta_graph`` and
    ``--memory_budget_mb``; the tool adds its own flags."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", required=True, help="checkpoint folder (its latest checkpoint) or prefix")
    parser.add_argument("--output", required=True, help=f"{what} folder to write (replaced if it exists)")
    parser.add_argument("--meta_graph", help="the training graph's .meta (default: <prefix>.meta)")
    parser.add_argument("--memory_budget_mb", type=float, default=0.0,
                        help="memory merging and writing one table may use (0: a quarter of RAM)")
    return parser


def budget_bytes(args: argparse.Namespace) -> Optional[int]:
    """``--memory_budget_mb`` in bytes, or None for the default (a quarter of RAM)."""
    return int(args.memory_budget_mb * 2**20) or None
