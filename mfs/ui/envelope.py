"""The reply shape the Metaflow UI expects from the UI backend (official ui_backend_service):
{"data", "status", "links": {self, first, prev, next, last}, "pages": {...}, "query"}; lists are
paged by number (_page) and the UI follows links.next until it is null."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web


def _url(request: web.Request, query: dict) -> str:
    qs = urlencode(query, safe=":,")
    return f"{request.path}{'?' + qs if qs else ''}"


def page_params(request: web.Request, default_limit: int, max_limit: int = 1000) -> tuple[int, int]:
    """(_page, _limit) as the official backend reads them: bad values fall back to defaults."""
    try:
        page = max(int(request.query.get("_page", 1)), 1)
    except ValueError:
        page = 1
    try:
        limit = max(min(int(request.query.get("_limit", default_limit)), max_limit), 1)
    except ValueError:
        limit = default_limit
    return page, limit


def reply(
    request: web.Request,
    data,
    *,
    page: int = 1,
    has_next: bool = False,
    last: int | None = None,
    status: int = 200,
) -> web.Response:
    query = dict(request.query)
    next_page = page + 1 if has_next else None
    prev_page = max(page - 1, 1)
    body = {
        "data": data,
        "status": status,
        "links": {
            "self": _url(request, query),
            "first": _url(request, {**query, "_page": 1}),
            "prev": _url(request, {**query, "_page": prev_page}),
            "next": _url(request, {**query, "_page": next_page}) if next_page else None,
            "last": _url(request, {**query, "_page": last}) if last else None,
        },
        "pages": {"self": page, "first": 1, "prev": prev_page, "next": next_page, "last": last},
        "query": query,
    }
    return web.json_response(body, status=status)


def error(status: int, message: str, id_: str = "error") -> web.Response:
    """An error as the official backend shapes it (the UI shows `detail`/`message`)."""
    return web.json_response(
        {
            "id": id_,
            "status": status,
            "title": message,
            "detail": message,
            "message": message,
            "traceback": None,
        },
        status=status,
    )


def guarded(handler):
    """Turns the service's and the datastore's errors into the UI's error replies."""
    from .datastore import DatastoreError
    from .service import ServiceError

    async def wrapped(request: web.Request):
        try:
            return await handler(request)
        except (ServiceError, DatastoreError) as e:
            return error(e.status, e.message)

    wrapped.__name__ = handler.__name__
    return wrapped


async def service_page(request: web.Request, path: str, params: dict, default_limit: int):
    """One page of a /ui list of the service, asked for with _limit + 1 rows: (rows, page, has_next)."""
    page, limit = page_params(request, default_limit)
    rows = await request.app["service"].get(path, {**params, "_limit": limit, "_page": page})
    return rows[:limit], page, len(rows) > limit
