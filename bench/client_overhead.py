"""Figure 2: client overhead. Wall time of the 100-task foreach flow (bench/flows/foreach_flow.py:
start -> foreach(width) -> join -> end) with METAFLOW_DEFAULT_METADATA=service (through the
Deno router, local datastore) ÷ the same flow with Metaflow's local metadata. Runs alternate
(service, local, local, service, ...) and the figure is median(service) ÷ median(local), plus
the median of per-round ratios.

    python bench/client_overhead.py [--rounds 5] [--width 100]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import common
from common import log, median


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--width", type=int, default=100)
    args = ap.parse_args()
    pg = common.start_postgres()
    try:
        dsn = common.new_database(pg)
        router = common.Router(dsn)
        try:
            times = {"service": [], "local": []}
            cpu = {"service": [], "local": []}
            ratios = []
            for i in range(args.rounds):
                order = ["service", "local"] if i % 2 == 0 else ["local", "service"]
                got = {}
                for mode in order:
                    work = Path(tempfile.mkdtemp(prefix=f"mfs-bench-{mode}-"))
                    env = common.metaflow_env(router, work, metadata=mode)
                    c0 = (common.children_cpu(), common.proc_cpu(router.proc.pid), common.postgres_cpu(pg))
                    got[mode] = common.run_flow(env, args.width, work)
                    c1 = (common.children_cpu(), common.proc_cpu(router.proc.pid), common.postgres_cpu(pg))
                    cpu[mode].append([b - a for a, b in zip(c0, c1)])
                    shutil.rmtree(work, ignore_errors=True)
                    times[mode].append(got[mode])
                ratios.append(got["service"] / got["local"])
                log(
                    f"round {i + 1}: service {got['service']:.2f}s local {got['local']:.2f}s "
                    f"ratio {ratios[-1]:.3f}"
                )
        finally:
            router.stop()
    finally:
        pg.stop()
    print(
        f"\n## Figure 2: client overhead ({args.width}-wide foreach = {args.width + 3} tasks, "
        f"{args.rounds} rounds, alternating)\n"
    )
    print("| round | service s | local s | ratio |")
    print("|---|---|---|---|")
    for i in range(args.rounds):
        print(f"| {i + 1} | {times['service'][i]:.2f} | {times['local'][i]:.2f} | {ratios[i]:.3f} |")
    print(
        f"| **median** | {median(times['service']):.2f} | {median(times['local']):.2f} | "
        f"**{median(ratios):.3f}** |"
    )
    print(
        "\nCPU seconds per run (median): flow processes (Metaflow client, tasks, sidecars), "
        "router, Postgres\n"
    )
    print("| mode | flow CPU s | router CPU s | Postgres CPU s |")
    print("|---|---|---|---|")
    for mode in ("service", "local"):
        print(
            f"| {mode} | " + " | ".join(f"{median([c[j] for c in cpu[mode]]):.1f}" for j in range(3)) + " |"
        )
    print(f"\nmedian(service) / median(local) = {median(times['service']) / median(times['local']):.3f}")
    common.save_json("fig2_client_overhead.json", dict(times=times, ratios=ratios, cpu=cpu, args=vars(args)))


if __name__ == "__main__":
    main()
