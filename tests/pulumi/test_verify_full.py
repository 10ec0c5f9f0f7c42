"""Migrations through a `sslmode=verify-full` URL on a machine without ~/.postgresql/root.crt,
as cockroach-b2 gives them: a TLS Postgres whose certificate (for `localhost`) is signed by a
test CA standing in for the system trust store (`SSL_CERT_FILE`, which OpenSSL's default paths
honour). The provider process must verify through that store, and refuse a server whose
certificate the store does not trust."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness import ROOT
from mfs.local_postgres import LocalPostgres

CHILD = r"""
import sys
from components.providers.schema_migrations import SchemaMigrationsProvider, migration_inputs
outs = SchemaMigrationsProvider().create({"dsn": sys.argv[1], "sql_dir": "sql",
                                         **migration_inputs(), "drop_on_destroy": False}).outs
print(len(outs["applied"]))
"""


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    certs = tmp_path_factory.mktemp("certs")
    certs.chmod(0o755)
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=certs,
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=certs,
    )
    (certs / "ext.cnf").write_text("subjectAltName=DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
        cwd=certs,
    )
    debian = Path("/usr/lib/postgresql/15/bin")  # built with OpenSSL (pgserver's is not)
    server = LocalPostgres(debian, settings={"ssl": "on"})
    # the server reads its key and certificate from its own data folder (owner-only key)
    server.settings.update(ssl_cert_file="server.pem", ssl_key_file="server.key")
    original_initdb = server._initdb

    def initdb(data):
        original_initdb(data)
        for name in ("server.pem", "server.key"):
            target = Path(data) / name
            target.write_bytes((certs / name).read_bytes())
            target.chmod(0o600)
            server._chown(target)

    server._initdb = initdb
    server.start()
    try:
        yield server, certs
    finally:
        server.stop()


def migrate(url, home, ca):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PGSSLROOTCERT")}
    env.update(HOME=str(home), SSL_CERT_FILE=str(ca), PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", CHILD, url], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_verify_full_works_through_the_system_trust_store(tls_server, tmp_path):
    server, certs = tls_server
    url = f"postgresql://postgres:{server.password}@localhost:{server.port}/postgres?sslmode=verify-full"
    assert not (tmp_path / ".postgresql").exists()
    done = migrate(url, tmp_path, certs / "ca.pem")
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 10
    # a store that does not hold the server's CA: refused, not silently unverified
    other = tmp_path / "other"
    other.mkdir()
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=other",
        "-keyout",
        "o.key",
        "-out",
        "o.pem",
        cwd=other,
    )
    refused = migrate(url, tmp_path, other / "o.pem")
    assert refused.returncode != 0 and "certificate verify failed" in refused.stderr
