"""`make bench`: run every benchmark and write its figures to bench/results/.

    python -m bench            # all
    python -m bench stack      # one
"""

from __future__ import annotations

import sys

from bench import caption, ingest, normalize, stack

BENCHES = {"stack": stack.main, "ingest": ingest.main, "normalize": normalize.main,
           "caption": caption.main}

if __name__ == "__main__":
    names = sys.argv[1:] or list(BENCHES)
    for name in names:
        BENCHES[name]()
