"""Figure 7: the Metaflow UI over the service, measured in a real browser (issue 11, Speed).

A local router over Debian's PostgreSQL 15 holds a flow of 10,000 runs (generated in SQL, a
third of them failed) and one real 100-task foreach run (Metaflow, local datastore). `mfs ui`
serves the v1.3.14 bundle (../shared/vendor/metaflow-ui) over it; headless Chromium opens

- the home page: from navigation until the newest runs of the 10,000-run flow are on screen;
- the foreach run's timeline: until the run's status and its first steps' rows are on screen
  (the list is virtualised: rows below the fold are not in the page);
- the foreach run's DAG view, likewise;

and the service requests each view cost are read from the quota ledger (every router request
is counted there). Medians of --rounds loads (each in a fresh tab state: the page is reloaded).

    python bench/ui_speed.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

import common
from common import log

sys.path[:0] = [str(common.ROOT / "tests"), str(common.ROOT / "tests" / "ui")]
from browser import Browser  # noqa: E402
from testkit import Router, metaflow_env, q  # noqa: E402
from uikit import UiServer  # noqa: E402

FLOWS = common.ROOT / "tests" / "flows"
BIG_FLOW_SQL = """
insert into flows_v3 (flow_id, user_name, ts_epoch) values ('BigFlow', 'bench', 1);
insert into runs_v3 (flow_id, user_name, ts_epoch, last_heartbeat_ts, tags, system_tags)
select 'BigFlow', 'bench', (extract(epoch from now()) * 1000)::bigint - (10001 - i) * 60000,
       extract(epoch from now())::bigint - (10001 - i) * 60, '["nightly"]'::jsonb,
       '["user:bench", "runtime:dev"]'::jsonb
  from generate_series(1, 10000) i;
insert into metadata_v3 (flow_id, run_number, step_name, task_id, field_name, value, type,
                         user_name, ts_epoch, tags, system_tags)
select 'BigFlow', r.run_number, 'end', 1, 'attempt_ok',
       case when r.run_number % 3 = 0 then 'False' else 'True' end, 'internal_attempt_status',
       'bench', r.ts_epoch + 30000, '["attempt_id:0"]', '[]'
  from runs_v3 r where r.flow_id = 'BigFlow';
analyze;
"""


def execute(dsn: str, script: str) -> None:
    async def go():
        con = await asyncpg.connect(dsn)
        try:
            await con.execute(script)
        finally:
            await con.close()

    common.run_sync(go())


def requests_counted(dsn: str) -> int:
    return q(dsn, "select coalesce(sum(requests), 0) from mfs.quota_usage")[0][0]


SHOWN_SCRIPT = """
(() => {
  if (!location.href.startsWith("http")) return;
  const want = NEEDLES;
  window.__mfsShown = null;
  const check = () => {
    if (document.body && want.every((n) => document.body.innerText.includes(n))) {
      window.__mfsShown = performance.now();
    } else {
      setTimeout(check, 25);
    }
  };
  check();
})();
"""


def measure(browser: Browser, dsn: str, url: str, needles: tuple[str, ...], rounds: int) -> tuple[float, int]:
    """Median seconds from navigation until all `needles` show, as the page itself sees it (a
    script installed before the page's own checks the text every 25 ms; performance.now() counts
    from the navigation's start), and service requests per load."""
    import json

    driver = browser.driver
    script = driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {"source": SHOWN_SCRIPT.replace("NEEDLES", json.dumps(needles))},
    )["identifier"]
    times, counts = [], []
    try:
        for _ in range(rounds):
            driver.get("about:blank")
            time.sleep(1.0)  # let the previous view's requests settle before counting
            before = requests_counted(dsn)
            driver.get(url)
            try:
                browser.wait_text(*needles, timeout=60)
                for _ in range(100):
                    shown = driver.execute_script("return window.__mfsShown")
                    if shown is not None:
                        break
                    time.sleep(0.05)
            except Exception:
                missing = [n for n in needles if n not in browser.text()]
                log(f"{url}: still missing {missing} after 60 s; the page shows:\n{browser.text()[:1500]}")
                raise
            times.append(shown / 1000)
            time.sleep(1.5)  # requests the view makes after it shows (e.g. the DAG, metadata pages)
            counts.append(requests_counted(dsn) - before)
    finally:
        driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script})
    return statistics.median(times), int(statistics.median(counts))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    pg = common.start_postgres()
    router = ui = browser = None
    tmp = Path(tempfile.mkdtemp(prefix="mfs-ui-bench-"))
    try:
        dsn = common.new_database(pg)
        execute(dsn, BIG_FLOW_SQL)
        router = Router(dsn, "bench-key-" + "x" * 20)
        env = metaflow_env(router, tmp)
        sysroot = Path(env["METAFLOW_DATASTORE_SYSROOT_LOCAL"])
        sysroot.mkdir(parents=True, exist_ok=True)
        log("running a 100-task foreach through the router ...")
        res = subprocess.run(
            [
                sys.executable,
                str(FLOWS / "foreach_flow.py"),
                "--no-pylint",
                "run",
                "--n",
                "100",
                "--max-workers",
                "16",
            ],
            env=env,
            cwd=sysroot,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if res.returncode != 0:
            raise SystemExit(f"the foreach run failed:\n{res.stderr[-3000:]}")
        run = router.session().get(f"{router.url}/flows/ForeachFlow/runs").json()[0]["run_number"]
        ui = UiServer(env, tmp / "ui-cache")
        browser = Browser()
        newest = q(dsn, "select max(run_number) from runs_v3 where flow_id = 'BigFlow'")[0][0]
        views = [
            ("home page, flow of 10,000 runs", f"{ui.url}/?timerange_start=0", ("BigFlow", str(newest))),
            (
                "run page timeline, 100-task foreach",
                f"{ui.url}/ForeachFlow/{run}/view/timeline",
                ("Completed", "start", "each"),
            ),  # the list is virtualised: later steps are below the fold
            (
                "run page DAG, 100-task foreach",
                f"{ui.url}/ForeachFlow/{run}/view/dag",
                ("start", "each", "join", "end"),
            ),
        ]
        print("| view | median time to show (s) | service requests per load |\n|---|---|---|")
        for label, url, needles in views:
            seconds, n = measure(browser, dsn, url, needles, args.rounds)
            print(f"| {label} | {seconds:.2f} | {n} |", flush=True)
        errors = browser.console_errors()
        print(f"\nbrowser console errors: {len(errors)}")
    finally:
        if browser:
            browser.close()
        if ui:
            ui.stop()
        if router:
            router.stop()
        pg.stop()


if __name__ == "__main__":
    main()
