"""List what an mx_rec checkpoint folder holds: every unit (full, base, delta), its step, size, and per table
the keys each rank saved; every file verified.

    python tools/inspect_checkpoint.py CKPT_DIR_OR_PREFIX [--json]

Exit status 0 when every unit verified, 1 when one is damaged (the line names the file), 2 when the
path is no checkpoint. From Python: ``mx_rec.saver.inventory.inspect_checkpoint``.
"""
import argparse
import json
import os
import sys
from typing import Optional, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mx_rec.saver.inventory import format_inventory, inspect_checkpoint  # noqa: E402
from mx_rec.saver.layout import CheckpointError  # noqa: E402


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="checkpoint folder (any filesystem TF has) or checkpoint prefix")
    parser.add_argument("--json", action="store_true", help="print the inventory as JSON")
    args = parser.parse_args(argv)
    try:
        inventory = inspect_checkpoint(args.path)
    except CheckpointError as err:
        print(f"inspect_checkpoint.py: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(inventory.as_dict(), indent=1) if args.json else format_inventory(inventory))
    return 1 if inventory.damaged else 0


if __name__ == "__main__":
    sys.exit(main())
