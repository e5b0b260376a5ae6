"""`make bench`: run every benchmark and write its figures to bench/results/.

    python -m bench            # all, each in a child process of its own (one process tree), then the table
    python -m bench stack      # one (then the summary table)
    python -m bench summary    # only the table, from what bench/results holds

A child process per benchmark keeps one benchmark's memory and threads (Spark, a trained model, a
million vectors) out of the next one's figures: the serving bench's RSS is the API's, not the bench's.
"""

from __future__ import annotations

import subprocess
import sys

from bench import caption, ingest, normalize, search, serving, stack, summary

BENCHES = {
    "stack": stack.main,
    "ingest": ingest.main,
    "normalize": normalize.main,
    "caption": caption.main,
    "serving": lambda: serving.main([]),
    "search": search.main,
}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        BENCHES[argv[1]]()
        return 0
    unknown = [n for n in argv if n not in BENCHES and n != "summary"]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join([*BENCHES, 'summary'])}")
        return 2
    for name in [n for n in (argv or list(BENCHES)) if n != "summary"]:
        done = subprocess.run([sys.executable, "-m", "bench", "--child", name], check=False)
        if done.returncode:
            print(f"bench {name} failed (exit {done.returncode}); the table shows what bench/results holds")
            return done.returncode
    summary.main()  # every figure against its baseline: bench/results/<date>.json and summary.md
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
