"""`make bench`: run every benchmark and write its figures to bench/results/.

    python -m bench            # all, each in a child process of its own (one process tree), then the table
    python -m bench stack      # one (then the summary table)
    python -m bench summary    # only the table, from what bench/results holds

They run on a stack of their own (`lake env bench`: .lake/stacks/bench, every port + 20000; `make bench`
sets it), never on the user's lake: the stack benchmark wipes and restarts that stack. The servers this run
started are stopped at its end.

A child process per benchmark keeps one benchmark's memory and threads (Spark, a trained model, a
million vectors) out of the next one's figures: the serving bench's RSS is the API's, not the bench's.
"""

from __future__ import annotations

import subprocess
import sys

from bench import caption, ingest, normalize, search, serving, stack, summary
from infra import stack as infra_stack
from lake.config import get_settings

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
    names = [n for n in (argv or list(BENCHES)) if n != "summary"]
    if names:
        s = get_settings()
        if s.is_user_lake:
            print('error: benchmarks run on their own stack, not your lake: `make bench` (or eval "$(lake env bench)")')
            return 2
        running = {r.name for r in infra_stack.status(s) if r.pid}
        try:
            if names != ["stack"]:
                infra_stack.up(s)  # the stack benchmark starts it itself
            for name in names:
                done = subprocess.run([sys.executable, "-m", "bench", "--child", name], check=False)
                if done.returncode:
                    print(f"bench {name} failed (exit {done.returncode}); the table shows what bench/results holds")
                    return done.returncode
        finally:
            started = [r.name for r in infra_stack.status(s) if r.pid and r.name not in running]
            if started:
                infra_stack.down(s, started)
    summary.main()  # every figure against its baseline: bench/results/<date>.json and summary.md
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
