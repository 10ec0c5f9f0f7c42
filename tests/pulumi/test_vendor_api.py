"""The vendor client's failure handling: a silent server ends in a timeout, not a hang; 5xx on
GET is retried, on POST it is not (a create might have happened); errors carry the vendor's
message and never the credentials."""

import socket
import threading
import time

import pytest

from components.providers.vendor_api import VendorApi, VendorError
from neon_standin import neon_standin


def test_a_silent_server_times_out():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        accepted = []
        threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
        api = VendorApi(
            f"http://127.0.0.1:{listener.getsockname()[1]}", "secret-token", timeout=0.5, attempts=1
        )
        started = time.monotonic()
        with pytest.raises(VendorError, match="no answer") as err:
            api.call("GET", "/x", "probe")
        assert time.monotonic() - started < 5 and "secret-token" not in str(err.value)


def test_retries_follow_the_method():
    api_server = neon_standin()
    try:
        api = VendorApi(api_server.url, "secret-token", backoff=0.01)
        api_server.fail("GET", "/users/me/organizations", 502, times=3)
        assert api.call("GET", "/users/me/organizations", "list")["organizations"]
        api_server.fail("POST", "/projects", 503, times=1)
        with pytest.raises(VendorError, match="create: HTTP 503") as err:
            api.call("POST", "/projects", "create", json={"project": {"name": "x"}})
        assert "secret-token" not in str(err.value)
        assert api_server.count("POST", "/projects") == 1
        assert api.call("GET", "/projects/proj-404", "get", absent_ok=True) is None
    finally:
        api_server.close()
