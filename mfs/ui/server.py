"""The `mfs ui` web server (aiohttp): the UI bundle at `/` (index.html with
`window.METAFLOW_SERVICE` injected, and answering every other unknown GET path: client-side
routing), the UI backend API under `/api`, the websocket at `/api/ws`.

Safe by default: listens on 127.0.0.1; the service key and S3 credentials stay in this process
(the browser talks only to this server); static files are served only from inside the bundle
folder; requests whose Host header is not this machine's name are refused (DNS rebinding)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

from aiohttp import web

from . import api_cards, api_logs, api_misc, api_runs, api_search, api_tasks
from .config import UiConfig
from .datastore import Datastore
from .live import FRESH_HEADER, Live, websocket
from .service import Service, fresh_reads
from .start_metadata import StartMetadata

API_PREFIX = "/api"
LOCAL_NAMES = {"127.0.0.1", "localhost", "[::1]", "::1"}


def inject_service(index_html: str, service: str = API_PREFIX) -> str:
    tag = f"<script>window.METAFLOW_SERVICE={json.dumps(service)};</script>"
    i = index_html.find("</head>")
    return index_html[:i] + tag + index_html[i:] if i >= 0 else tag + index_html


@web.middleware
async def host_check(request: web.Request, handler):
    allowed = request.app["allowed_hosts"]
    if allowed is not None:
        host = (
            (request.host or "").rsplit(":", 1)[0]
            if not (request.host or "").startswith("[")
            else request.host.split("]")[0] + "]"
        )
        if host not in allowed:
            return web.json_response({"message": f"host {request.host!r} is not served here"}, status=403)
    return await handler(request)


@web.middleware
async def trace(request: web.Request, handler):
    """MFS_UI_TRACE=1: one line per request on stderr (path, status, milliseconds, service requests
    made meanwhile), to see what a view costs."""
    service, started = request.app["service"], time.perf_counter()
    before = service.requests
    response = await handler(request)
    print(
        f"mfs-ui {request.method} {request.path_qs} {response.status} "
        f"{(time.perf_counter() - started) * 1000:.0f}ms service+{service.requests - before}",
        file=sys.stderr,
        flush=True,
    )
    return response


@web.middleware
async def live_reads(request: web.Request, handler):
    """The live updates' own reads (FRESH_HEADER) go past the service memo."""
    if request.headers.get(FRESH_HEADER):
        fresh_reads.set(True)
    return await handler(request)


def make_app(
    config: UiConfig, bundle_dir: Path, *, port: int, host: str = "127.0.0.1", ws_interval: float = 2.0
) -> web.Application:
    tracing = os.environ.get("MFS_UI_TRACE", "") not in ("", "0")
    app = web.Application(middlewares=[host_check, live_reads] + ([trace] if tracing else []))
    app["config"], app["port"], app["api_prefix"], app["ws_interval"] = config, port, API_PREFIX, ws_interval
    app["allowed_hosts"] = (LOCAL_NAMES | {host}) if host in LOCAL_NAMES else None
    app["service"] = Service(config.service_url, config.api_key)
    app["datastore"] = Datastore(config)
    app["start_metadata"] = StartMetadata()
    app["live"] = Live(app, interval=ws_interval)
    bundle = bundle_dir.resolve()
    index = inject_service((bundle / "index.html").read_text())

    async def on_startup(app):
        await app["service"].start()

    async def on_cleanup(app):
        await app["live"].close()
        await app["service"].close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)

    def add(path, handler):
        app.router.add_get(API_PREFIX + path, handler)

    add("/ws", websocket)
    for module in (
        api_misc,
        api_search,
        api_runs,
        api_tasks,
        api_logs,
        api_cards,
    ):  # autocomplete before /flows/{id}
        module.routes(add)

    async def api_unknown(request):
        return web.json_response({"message": f"no such UI endpoint: {request.path}"}, status=404)

    async def static(request: web.Request):
        rel = request.match_info["path"]
        if rel and not rel.startswith("api/") and rel != "api":
            target = (bundle / rel).resolve()
            if bundle in target.parents and target.is_file() and target.name != "index.html":
                return web.FileResponse(target, headers={"Cache-Control": "public, max-age=3600"})
        elif rel.startswith("api"):
            return await api_unknown(request)
        return web.Response(text=index, content_type="text/html", headers={"Cache-Control": "no-cache"})

    app.router.add_get("/{path:.*}", static)
    return app


def serve(
    config: UiConfig, bundle_dir: Path, host: str = "127.0.0.1", port: int = 8083, print_fn=print
) -> None:
    """Runs until SIGINT/SIGTERM/SIGHUP."""

    async def main():
        app = make_app(config, bundle_dir, port=port, host=host)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        shown = f"[{host}]" if ":" in host else host
        print_fn(
            f"Metaflow UI on http://{shown}:{port}/ (metadata service {config.service_url}, "
            f"datastore {config.datastore}); Ctrl-C stops it",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())
