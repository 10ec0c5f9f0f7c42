"""Task logs for the UI: stdout/stderr of one attempt as rows ({row, timestamp, line}) with pages
(`_limit`, `_page`, `_order=-row` for newest first) and as a file download. Read from Metaflow's
datastore without consuming anything; a task still running has its lines once Metaflow saved them."""

from __future__ import annotations

from aiohttp import web

from .api_tasks import attempts_of
from .envelope import error, guarded, page_params, reply


async def _lines(request: web.Request, stream: str):
    m = request.match_info
    rows = await attempts_of(request)
    if not rows:
        return None, None
    want = request.query.get("attempt_id")
    if want is not None and want.isdigit():
        rows = [r for r in rows if r["attempt_id"] == int(want)]
        if not rows:
            return None, None
    task = max(rows, key=lambda r: r["attempt_id"])
    pathspec = [m["flow_id"], task["run_number"], m["step_name"], task["task_id"]]
    return task, await request.app["datastore"].log_lines_async(pathspec, task["attempt_id"], stream)


def _handler(stream: str):
    @guarded
    async def logs(request: web.Request):
        task, lines = await _lines(request, stream)
        if task is None:
            return error(404, "task or attempt not found")
        page, limit = page_params(request, 1000, 10000)
        total = len(lines)
        pages = max(-(total // -limit), 1)
        rows = [{"row": n, "timestamp": ts, "line": line} for n, (ts, line) in enumerate(lines)]
        if request.query.get("_order", "").startswith("-row"):
            rows = rows[::-1]
        chunk = rows[(page - 1) * limit : page * limit] if page <= pages else []
        return reply(request, chunk, page=page, has_next=page < pages, last=pages)

    logs.__name__ = f"logs_{stream}"
    return logs


def _download(stream: str):
    @guarded
    async def download(request: web.Request):
        task, lines = await _lines(request, stream)
        if task is None:
            return error(404, "task or attempt not found")
        name = f"{stream}_{task['flow_id']}_{task['run_number']}_{task['step_name']}_{task['task_id']}-{task['attempt_id']}.txt"
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        return web.Response(
            text="\n".join(line for _, line in lines) + ("\n" if lines else ""),
            content_type="text/plain",
            headers={"Content-Disposition": f"attachment;filename={safe}"},
        )

    download.__name__ = f"download_{stream}"
    return download


def routes(add) -> None:
    task_r = "/flows/{flow_id}/runs/{run_number}/steps/{step_name}/tasks/{task_id}"
    for short, stream in (("out", "stdout"), ("err", "stderr")):
        add(f"{task_r}/logs/{short}", _handler(stream))
        add(f"{task_r}/logs/{short}/download", _download(stream))
