"""Replaying a recorded Metaflow run as load: each copy of the recording runs under a new flow
name, in the recorded order, with the run number and task ids the service assigns mapped in.
The same requests go either over HTTP to the router or straight to mfs_api.call via asyncpg."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import defaultdict

from common import CALL_SQL, ROUTES

_ROUTE_BY_OP_PATTERN = {(r["method"], r["op"]): r for r in ROUTES}


def program_from_records(records: list[dict]) -> list[dict]:
    prog = []
    for r in records:
        if not r.get("op"):
            continue
        route = next(
            x
            for x in ROUTES
            if x["method"] == r["method"]
            and x["op"] == r["op"]
            and len(x["parts"]) == len(r["path"].split("/")[1:])
        )
        orig = None
        if r["op"] in ("run_create", "task_create") and r["status"] == 200:
            reply = json.loads(r["reply"])
            orig = str(reply["run_number" if r["op"] == "run_create" else "task_id"])
        prog.append(
            dict(
                op=r["op"],
                method=r["method"],
                route=route,
                params=r["params"],
                query={k: v for k, v in r["query"].items() if k in route["query"]},
                body=json.loads(r["body"]) if r["body"] else None,
                orig=orig,
            )
        )
    return prog


def _rewrite(v, flow, runs, tasks):
    if isinstance(v, list):
        return [_rewrite(x, flow, runs, tasks) for x in v]
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k == "flow_id":
                x = flow
            elif k == "run_number" and str(x) in runs:
                x = runs[str(x)] if isinstance(x, str) else int(runs[str(x)])
            elif k == "task_id" and str(x) in tasks:
                x = tasks[str(x)] if isinstance(x, str) else int(tasks[str(x)])
            out[k] = x
        return out
    return v


class Replayer:
    """Drives `concurrency` workers replaying copies of `program` until `duration` s pass."""

    def __init__(self, program: list[dict], flow_prefix: str):
        self.program = program
        self.flow_prefix = flow_prefix
        self.copies = itertools.count()

    async def _copy(self, send, lat: dict, errors: list, deadline: float):
        k = next(self.copies)
        flow = f"{self.flow_prefix}{k}"
        runs, tasks = {}, {}
        for step in self.program:
            if time.perf_counter() >= deadline:
                return False
            params = dict(step["params"])
            params["flow_id"] = flow
            if "run_number" in params:
                params["run_number"] = runs.get(params["run_number"], params["run_number"])
            if "task_id" in params:
                params["task_id"] = tasks.get(params["task_id"], params["task_id"])
            body = None
            if step["body"] is not None:
                body = json.dumps(_rewrite(step["body"], flow, runs, tasks))
            t0 = time.perf_counter()
            status, reply = await send(step, params, body)
            t1 = time.perf_counter()
            if t1 < deadline:
                lat[step["op"]].append(t1 - t0)
            if status >= 500:
                errors.append((step["op"], status, reply[:200]))
            if step["orig"] is not None and status == 200:
                new = json.loads(reply)
                key = "run_number" if step["op"] == "run_create" else "task_id"
                (runs if key == "run_number" else tasks)[step["orig"]] = str(new[key])
        return True

    async def run(self, send, concurrency: int, duration: float) -> dict:
        lat = defaultdict(list)
        errors: list = []
        start = time.perf_counter()
        deadline = start + duration
        cpu0 = time.process_time()

        async def worker():
            while time.perf_counter() < deadline:
                if not await self._copy(send, lat, errors, deadline):
                    break

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = min(time.perf_counter(), deadline) - start
        n = sum(len(v) for v in lat.values())
        return dict(
            requests=n,
            seconds=elapsed,
            rps=n / elapsed,
            latencies=dict(lat),
            errors=errors,
            client_cpu_s=time.process_time() - cpu0,
        )


def http_sender(session, base_url: str, key: str):
    headers = {"x-api-key": key}

    async def send(step, params, body):
        from common import build_path

        url = base_url + build_path(step["route"], params)
        data = body.encode() if body is not None else None
        async with session.request(
            step["method"], url, params=step["query"] or None, data=data, headers=headers
        ) as r:
            return r.status, await r.text()

    return send


def direct_sender(pool, scope: str = "default"):
    async def send(step, params, body):
        args = dict(params)
        args.update(step["query"])
        row = await pool.fetchrow(CALL_SQL, scope, step["op"], json.dumps(args), body)
        return row["status"], row["body"]

    return send


async def replay_once(program: list[dict], send, flow: str) -> dict:
    """Replays one copy of the recording sequentially; returns {op: count} of requests sent."""
    rp = Replayer(program, flow)
    lat: dict = defaultdict(list)
    errors: list = []
    await rp._copy(send, lat, errors, float("inf"))
    if errors:
        raise RuntimeError(f"5xx replies while replaying: {errors[:3]}")
    return {op: len(v) for op, v in lat.items()}
