"""Command line: python -m mfs {migrate,pending,serve,local,quota}. See README.md."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
from pathlib import Path

from . import SQL_DIR
from .private_file import write_private


def _dsn(args) -> str:
    dsn = args.dsn or os.environ.get("DATABASE_URL") or os.environ.get("SUPABASE_DB_URL")
    if not dsn:
        sys.exit("error: give a Postgres URL as an argument or in DATABASE_URL")
    return dsn


def cmd_migrate(args) -> None:
    from .migrations import MigrationError, apply

    try:
        applied = apply(_dsn(args), Path(args.sql_dir), progress=print)
    except MigrationError as e:
        sys.exit(f"error: {e}")
    print(f"{len(applied)} migration(s) applied")


def cmd_pending(args) -> None:
    from .migrations import MigrationError, pending

    try:
        names = pending(_dsn(args), Path(args.sql_dir))
    except MigrationError as e:
        sys.exit(f"error: {e}")
    print("\n".join(names) if names else "no pending migrations")


def cmd_quota(args) -> None:
    import asyncio

    import asyncpg

    async def run():
        con = await asyncpg.connect(_dsn(args))
        try:
            return await con.fetchval("select mfs_api.set_quota_limits($1, $2, $3)::text",
                                      args.scope, args.max_requests, args.max_egress_bytes)
        finally:
            await con.close()

    print(json.dumps(json.loads(asyncio.run(run())), indent=2))


def cmd_serve(args) -> None:
    from .router import router_command

    key = os.environ.get("METADATA_API_KEY")
    if not key:
        sys.exit("error: set METADATA_API_KEY (the key clients send as x-api-key)")
    os.environ["DATABASE_URL"] = _dsn(args)
    os.environ.setdefault("PORT", str(args.port))
    cmd = router_command()
    os.execvp(cmd[0], cmd)


def cmd_local(args) -> None:
    """Embedded Postgres + migrations + router, with a Metaflow config printed to use it."""
    from .local_postgres import DEBIAN_BIN, LocalPostgres, free_port, pgserver_bin
    from .migrations import apply
    from .router import start_router

    bin_dir = pgserver_bin() if args.postgres == "pgserver" else DEBIAN_BIN
    data_dir = Path(args.data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True)
    key_file = data_dir / "api-key"
    if not key_file.exists():
        write_private(key_file, secrets.token_urlsafe(32), exclusive=True)
    key = key_file.read_text().strip()
    print(f"starting PostgreSQL ({bin_dir}) with data in {data_dir / 'pgdata'} ...", flush=True)
    pg = LocalPostgres(bin_dir, data_dir / "pgdata", port=args.db_port or free_port())
    pg.start()
    try:
        apply(pg.dsn, SQL_DIR, progress=lambda m: print("  " + m, flush=True))
        print(f"starting the router on port {args.port} ...", flush=True)
        proc = start_router(pg.dsn, key, args.port)
        url = f"http://127.0.0.1:{args.port}"
        print("\nready. To run a flow against it:\n")
        print("  export METAFLOW_DEFAULT_METADATA=service")
        print(f"  export METAFLOW_SERVICE_URL={url}")
        print(f"  export METAFLOW_SERVICE_AUTH_KEY=$(cat {key_file})")
        print("  python your_flow.py run\n\nCtrl-C stops both.", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        try:
            proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            proc.terminate()
            proc.wait(10)
    finally:
        pg.stop()


def cmd_worker_bundle(args) -> None:
    """Builds the Cloudflare Worker bundle; prints it to stdout unless --output is given."""
    from .worker import bundle

    if args.output:
        print(bundle(Path(args.output)))
        return
    with tempfile.TemporaryDirectory() as d:
        sys.stdout.write(bundle(Path(d) / "worker.js").read_text())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m mfs", description="metaflow-serverless metadata service")
    sub = p.add_subparsers(dest="command", required=True)
    for name, fn, helptext in [("migrate", cmd_migrate, "apply pending SQL migrations"),
                               ("pending", cmd_pending, "list pending migrations, change nothing")]:
        s = sub.add_parser(name, help=helptext)
        s.add_argument("dsn", nargs="?", help="Postgres URL (default: $DATABASE_URL)")
        s.add_argument("--sql-dir", default=str(SQL_DIR))
        s.set_defaults(fn=fn)
    s = sub.add_parser("serve", help="run the router for a database (needs METADATA_API_KEY)")
    s.add_argument("dsn", nargs="?", help="Postgres URL (default: $DATABASE_URL or $SUPABASE_DB_URL)")
    s.add_argument("--port", type=int, default=8080)
    s.set_defaults(fn=cmd_serve)
    s = sub.add_parser("quota", help="set the monthly limits of a quota scope (empty = unlimited)")
    s.add_argument("dsn", nargs="?")
    s.add_argument("--scope", default="default")
    s.add_argument("--max-requests", type=int)
    s.add_argument("--max-egress-bytes", type=int)
    s.set_defaults(fn=cmd_quota)
    s = sub.add_parser("local", help="embedded Postgres + migrations + router, for a quick try")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--db-port", type=int)
    s.add_argument("--data-dir", default="~/.metaflow-serverless/local")
    s.add_argument("--postgres", choices=["pgserver", "debian"], default="pgserver")
    s.set_defaults(fn=cmd_local)
    s = sub.add_parser("worker-bundle", help="build the router's Cloudflare Worker bundle (needs npm)")
    s.add_argument("--output", "-o", help="file to write (default: print the bundle)")
    s.set_defaults(fn=cmd_worker_bundle)
    args = p.parse_args(argv)
    args.fn(args)


if __name__ == "__main__":
    main()
