"""Certificate verification for `sslmode=verify-full` URLs (cockroach-b2) in the providers.

asyncpg takes the CA bundle for verify-ca/verify-full from `sslrootcert`, `PGSSLROOTCERT` or
`~/.postgresql/root.crt` only, and refuses to connect when none exists: on a fresh machine a
CockroachDB Cloud URL would fail before connecting. CockroachDB Cloud's Basic and Standard
clusters present certificates from a publicly trusted CA, so the system trust store (OpenSSL's
default file, `SSL_CERT_FILE` if set; certifi's bundle where the system has none) verifies
them. A user's own root.crt, sslrootcert or PGSSLROOTCERT (e.g. a cluster's own CA) wins.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from urllib.parse import parse_qs, urlsplit


def use_system_trust_store(dsn: str) -> None:
    """Point asyncpg at the system trust store when `dsn` verifies and names no CA of its own."""
    query = parse_qs(urlsplit(dsn).query)
    if query.get("sslmode", [""])[0] not in ("verify-ca", "verify-full"):
        return
    if (
        "sslrootcert" in query
        or os.environ.get("PGSSLROOTCERT")
        or (Path.home() / ".postgresql" / "root.crt").exists()
    ):
        return
    cafile = ssl.get_default_verify_paths().cafile
    if not cafile:
        import certifi

        cafile = certifi.where()
    os.environ["PGSSLROOTCERT"] = cafile  # this provider process only
