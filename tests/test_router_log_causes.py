"""The router's log and status tell a client that went away mid-request apart from a database
outage (issue 18): an incomplete request body is the client's (logged at info level, 400 if
anyone still listens, nothing written); only driver and connection errors are 503, logged with
a timestamp and the driver's cause, never "(unknown)" and never the DSN or password."""

import re
import socket
import time

import pytest

from mfs.processes import free_port
from testkit import Router, make_task, q

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"

# (what the client declares, what it sends of the body)
TRUNCATIONS = {
    "one byte of 100": ("Content-Length: 100\r\n", b"{"),
    "no byte of 100": ("Content-Length: 100\r\n", b""),
    "99 bytes of 100": ("Content-Length: 100\r\n", b"{" + b" " * 98),
    "chunk cut short": ("Transfer-Encoding: chunked\r\n", b'64\r\n{"a"'),
}


def send_truncated(router, path: str, framing: str, body: bytes, half_close: bool) -> bytes:
    """POSTs a body shorter than announced over a raw socket. half_close: stop sending but keep
    listening (the reply is returned); otherwise close the socket at once (returns b"")."""
    c = socket.create_connection(("127.0.0.1", router.port), timeout=10)
    try:
        c.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {router.key}\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n".encode()
            + body
        )
        if not half_close:
            return b""
        c.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := c.recv(65536):
            reply += chunk
        return reply
    finally:
        c.close()


def wait_for_lines(router, offset: int, needle: str, n: int) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        lines = [x for x in router.log_text()[offset:].splitlines() if needle in x]
        if len(lines) >= n or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.mark.parametrize("half_close", [True, False], ids=["client-still-listens", "client-gone"])
@pytest.mark.parametrize("case", list(TRUNCATIONS))
def test_truncated_body_is_the_clients_fault(router, api, migrated_db, case, half_close):
    r, t = make_task(api)
    before = q(migrated_db, "select last_heartbeat_ts, (select count(*) from metadata_v3) from tasks_v3")
    offset = len(router.log_text())
    framing, body = TRUNCATIONS[case]
    task = f"/flows/F/runs/{r}/steps/start/tasks/{t}"
    replies = [
        send_truncated(router, task + "/heartbeat", framing, body, half_close),
        send_truncated(router, task + "/metadata", framing, body, half_close),
    ]
    lines = wait_for_lines(router, offset, "request body incomplete", 2)
    log = router.log_text()[offset:]
    assert len(lines) == 2, log
    # one line each; a client that is gone may be noticed in either order
    assert sorted(re.search(r"op=(\w+)", line).group(1) for line in lines) == [
        "metadata_create",
        "task_heartbeat",
    ], lines
    for line in lines:
        assert re.search(rf"{ISO} info op=\w+ request body incomplete", line), line
    assert "database unavailable" not in log and "internal error" not in log and " error " not in log, log
    if half_close:
        for reply in replies:
            head, _, payload = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 "), reply
            assert b'"message"' in payload and b"request body" in payload, reply
    # nothing was written, and the router still serves
    assert (
        q(migrated_db, "select last_heartbeat_ts, (select count(*) from metadata_v3) from tasks_v3") == before
    )
    assert api.post(api.base + task + "/heartbeat", json={}).status_code == 200


def test_a_503_log_line_says_when_and_why():
    password = "pw-" + str(free_port()) + "-secret"
    closed = f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/postgres"
    router = Router(closed, "key")
    try:
        s = router.session()
        assert s.get(router.url + "/flows").status_code == 503
        assert s.post(router.url + "/flows/F", json={}).status_code == 503
        log = router.log_text()
    finally:
        router.stop()
    lines = [x for x in log.splitlines() if "database unavailable" in x]
    assert len(lines) == 2, log
    for line in lines:
        # when, how bad, which operation, and the driver's own code and message
        assert re.search(
            rf"{ISO} error op=(flows_list|flow_create) database unavailable \(ECONNREFUSED: connect ECONNREFUSED 127\.0\.0\.1:\d+\)$",
            line,
        ), line
    assert "(unknown)" not in log and password not in log and closed not in log, log
