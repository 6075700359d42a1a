"""``python -m benchmarks.peers``: see ``benchmarks.peers.run``."""
import sys

from benchmarks.peers.run import main

if __name__ == "__main__":
    sys.exit(main())
