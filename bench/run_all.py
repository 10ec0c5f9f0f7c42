"""Runs every benchmark figure in turn with its defaults (or --quick), printing each figure's
markdown and saving it to $MFS_BENCH_OUT (default /tmp/bench)/figN.md.

    python bench/run_all.py [--quick] [--only 1,3]

--quick shortens the long ones (figure 1: 3 rounds of 5 s; figure 2: 2 rounds of a 30-wide flow;
figure 7: 2 rounds of 4 s).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import OUT_DIR  # noqa: E402

FIGURES = {
    1: ("router_efficiency.py", [], ["--rounds", "3", "--seconds", "5"]),
    2: ("client_overhead.py", [], ["--rounds", "2", "--width", "30"]),
    3: ("scale.py", [], ["--tasks", "20000", "--samples", "100"]),
    4: ("capacity.py", [], []),
    5: ("cold_start.py", [], ["--rounds", "5"]),
    6: ("statements.py", [], []),
    7: ("throughput.py", [], ["--rounds", "2", "--seconds", "4"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma-separated figure numbers")
    args = ap.parse_args()
    only = [int(x) for x in args.only.split(",")] if args.only else sorted(FIGURES)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    failed = []
    for n in only:
        script, normal, quick = FIGURES[n]
        cmd = [sys.executable, str(HERE / script), *(quick if args.quick else normal)]
        print(f"\n### running figure {n}: {' '.join(cmd[1:])}", flush=True)
        res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        print(res.stdout, flush=True)
        (OUT_DIR / f"fig{n}.md").write_text(res.stdout)
        if res.returncode != 0:
            failed.append(n)
    if failed:
        sys.exit(f"figures that failed: {failed}")


if __name__ == "__main__":
    main()
