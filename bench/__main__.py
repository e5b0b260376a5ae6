"""`make bench`: run every benchmark and write its figures to bench/results/.

    python -m bench            # all
    python -m bench stack      # one (then the summary table)
    python -m bench summary    # only the table, from what bench/results holds
"""

from __future__ import annotations

import sys

from bench import caption, ingest, normalize, search, serving, stack, summary

BENCHES = {"stack": stack.main, "ingest": ingest.main, "normalize": normalize.main,
           "caption": caption.main, "serving": lambda: serving.main([]), "search": search.main,
           "summary": summary.main}

if __name__ == "__main__":
    names = sys.argv[1:] or list(BENCHES)
    for name in names:
        if name != "summary":
            BENCHES[name]()
    summary.main()  # every figure against its baseline: bench/results/<date>.json and summary.md
