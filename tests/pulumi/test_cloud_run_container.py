"""What Cloud Run would run for the neon-cloudrun stack, run here: the container's command, args
and plain environment exactly as registered, with Cloud Run's own additions (PORT set by the
platform, HOST never set by it) and three stand-ins (a local Deno for the image's `deno`, the
router folder for the GCS volume, the secrets as plain variables). Cloud Run's container
contract: listen on all interfaces at $PORT, else the revision never becomes ready."""

import os
import socket
import subprocess

import pytest
import requests

from components.cloud_run import CONTAINER_PORT, MOUNT
from harness import SECRETS, run_program
from leftovers import MARKER
from mfs.processes import free_port, stop_process
from mfs.router import ROUTER_DIR, deno_binary, wait_healthy

SERVICE = "gcp:cloudrunv2/service:Service"


def non_loopback_address() -> str | None:
    """An address of this machine other than 127.0.0.1 (the route to a public address)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


@pytest.mark.parametrize("stack", ["neon-cloudrun", "cockroach-b2"])
def test_the_registered_container_listens_on_all_interfaces_at_port(stack, tmp_path):
    container = run_program(stack, SECRETS).one(SERVICE).plain["template"]["containers"][0]
    assert container["ports"]["containerPort"] == CONTAINER_PORT
    plain = {e["name"]: e["value"] for e in container["envs"] if "value" in e}
    assert "PORT" not in plain  # reserved: Cloud Run refuses a service that sets it
    # Neon and CockroachDB bill what leaves the database: egress counted before gzip (the router
    # started below refuses a value it does not know)
    assert plain["QUOTA_EGRESS"] == "uncompressed"
    port = free_port()
    env = {
        **plain,
        "PORT": str(port),
        "DATABASE_URL": f"postgresql://x:y@127.0.0.1:{free_port()}/x",
        "METADATA_API_KEY": SECRETS["apiKey"],
        "PATH": os.environ["PATH"],
        "HOME": os.environ["HOME"],
        MARKER: os.environ[MARKER],
    }
    env.pop("DENO_DIR")  # the local Deno cache stands in for the image's (nothing fetched)
    argv = [deno_binary()] + [
        a.replace(f"{MOUNT}/", f"{ROUTER_DIR}/").replace("--allow-write=/tmp", f"--allow-write={tmp_path}")
        for a in container["args"]
    ]
    assert container["commands"] == ["deno"]
    log = tmp_path / "router.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        try:
            wait_healthy(f"http://127.0.0.1:{port}", proc, timeout=90)
        except RuntimeError:
            raise AssertionError(log.read_text(errors="replace")[-3000:])
        assert f"listening on http://0.0.0.0:{port}" in log.read_text()
        addr = non_loopback_address()
        if addr:  # what Cloud Run's front end does: connect from outside the loopback
            assert requests.get(f"http://{addr}:{port}/healthcheck", timeout=10).status_code == 200
    finally:
        stop_process(proc)
