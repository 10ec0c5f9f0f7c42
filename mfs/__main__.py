"""Command line: python -m mfs {migrate,pending,serve,quota,local,ui,ping,worker-bundle,deno-bundle}.
See README.md."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from . import SQL_DIR


KEEP_TAG = "keep"


def _limit(text: str):
    """A limit on the command line: a whole number of at least 0, or none (unlimited)."""
    from .quota import UNLIMITED

    if text.lower() in ("none", "unlimited"):
        return UNLIMITED
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number or none, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a limit cannot be negative (none = unlimited)")
    return value


def _dsn(args) -> str:
    dsn = args.dsn or os.environ.get("DATABASE_URL") or os.environ.get("SUPABASE_DB_URL")
    if not dsn:
        sys.exit("error: give a Postgres URL as an argument or in DATABASE_URL")
    return dsn


def cmd_migrate(args) -> None:
    from .migrations import apply

    applied = apply(_dsn(args), Path(args.sql_dir), progress=print)
    print(f"{len(applied)} migration(s) applied")


def cmd_pending(args) -> None:
    from .migrations import pending

    names = pending(_dsn(args), Path(args.sql_dir))
    print("\n".join(names) if names else "no pending migrations")


def cmd_quota(args) -> None:
    """Shows a scope's usage and the database size; sets the limits given (others unchanged)."""
    from .quota import show_and_set

    print(
        show_and_set(
            _dsn(args),
            args.scope,
            max_requests=args.max_requests,
            max_egress_bytes=args.max_egress_bytes,
            max_database_bytes=args.max_database_bytes,
            warn_percent=args.warn_percent,
        )
    )


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
    """Embedded Postgres + migrations + router, and a Metaflow profile to use it."""
    from .local_service import LocalOptions, run

    run(
        LocalOptions(
            data_dir=Path(args.data_dir).expanduser(),
            port=args.port,
            db_port=args.db_port,
            postgres=args.postgres,
            profile=None if args.no_profile else args.profile,
            ui_port=args.ui_port if args.ui else None,
        )
    )


def cmd_retain(args) -> None:
    """Deletes whole old runs (never a running one, never one tagged --keep-tag)."""
    from .retention import compact, delete, plan, stored_policy

    dsn = _dsn(args)
    keep_days, keep_runs, keep_tag = args.keep_days, args.keep_runs, args.keep_tag
    if keep_days is None and keep_runs is None:
        policy = stored_policy(dsn)
        if policy is None:
            sys.exit(
                "error: say what to keep: --keep-days N and/or --keep-runs N "
                "(or deploy a stack with a retention policy: retentionKeepDays / retentionKeepRuns)"
            )
        keep_days, keep_runs = policy.keep_days, policy.keep_runs
        keep_tag = policy.keep_tag if args.keep_tag == KEEP_TAG else args.keep_tag
        print(f"the stack's retention policy: {policy.describe()}")
    runs = plan(dsn, keep_days, keep_runs, keep_tag or None, args.flow)
    tasks = sum(r.tasks for r in runs)
    flows = len({r.flow_id for r in runs})
    print(f"{len(runs)} run(s) of {flows} flow(s) to delete, {tasks} task(s) in all")
    for r in runs[:20] if not args.dry_run else runs:
        print(f"  {r.pathspec}  ({r.tasks} tasks)")
    if len(runs) > 20 and not args.dry_run:
        print(f"  ... and {len(runs) - 20} more")
    if args.dry_run:
        print("dry run: nothing deleted")
        return
    if runs:
        root = Path(args.datastore_root).expanduser() if args.datastore_root else None
        totals = delete(dsn, runs, root)
        print("deleted " + ", ".join(f"{n} {k}" for k, n in totals.items()))
    else:
        print("nothing to delete")
    if runs or args.vacuum_full:
        print(compact(dsn, full=args.vacuum_full))


def cmd_worker_bundle(args) -> None:
    """Builds the Cloudflare Worker bundle; prints it to stdout unless --output is given."""
    from .worker import bundle

    if args.output:
        print(bundle(Path(args.output)))
        return
    with tempfile.TemporaryDirectory() as d:
        sys.stdout.write(bundle(Path(d) / "worker.js").read_text())


def cmd_deno_bundle(args) -> None:
    """Builds the router as one file for Deno; prints it to stdout unless --output is given."""
    from .deno_bundle import bundle

    if args.output:
        print(bundle(Path(args.output)))
        return
    with tempfile.TemporaryDirectory() as d:
        sys.stdout.write(bundle(Path(d) / "metadata-router.js").read_text())


def cmd_ping(args) -> None:
    """Wakes a service that scaled to zero: GET /healthcheck until it answers 200."""
    import time

    from .metaflow_profile import service_url
    from .router import wait_healthy

    url = args.url or service_url()
    if not url:
        sys.exit("error: give the service URL, or set METAFLOW_SERVICE_URL / METAFLOW_PROFILE")
    started = time.monotonic()
    wait_healthy(url.rstrip("/"), timeout=args.timeout, request_timeout=args.request_timeout)
    print(f"{url} is up ({time.monotonic() - started:.1f}s)")


def cmd_ui(args) -> None:
    """The Metaflow UI on this machine over the configured metadata service and datastore."""
    from .ui import bundle, config, server

    cfg = config.load(args.profile)
    folder = bundle.ensure(args.bundle, sha256=args.bundle_sha256)
    server.serve(cfg, folder, host=args.host, port=args.port)


def _expected_errors() -> tuple:
    """Failures a user can act on: shown as one line (MFS_DEBUG=1 shows the traceback)."""
    import asyncpg

    from .local_service import LocalServiceError
    from .migrations import MigrationError
    from .postgres_binaries import PostgresUnavailable
    from .ui.bundle import BundleError
    from .ui.config import ConfigError

    return (
        MigrationError,
        PostgresUnavailable,
        LocalServiceError,
        BundleError,
        ConfigError,
        asyncpg.PostgresError,
        OSError,
        RuntimeError,
        ValueError,
    )


class _HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" where there is one; options without a default say so in their help."""

    def _get_help_string(self, action):
        if action.default in (None, False):
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """A bad argument is one line: what is wrong, and where the help is (not the whole usage)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    fmt = _HelpWithDefaults
    p = _Parser(prog="python -m mfs", formatter_class=fmt, description="metaflow-serverless metadata service")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dsn_help = "Postgres URL (default: $DATABASE_URL, else $SUPABASE_DB_URL)"
    for name, fn, helptext in [
        ("migrate", cmd_migrate, "apply pending SQL migrations"),
        ("pending", cmd_pending, "list pending migrations, change nothing"),
    ]:
        s = sub.add_parser(name, help=helptext, description=helptext, formatter_class=fmt)
        s.add_argument("dsn", nargs="?", help=dsn_help)
        s.add_argument("--sql-dir", default=str(SQL_DIR), help="folder of numbered .sql files")
        s.set_defaults(fn=fn)
    text = "run the router for a database (needs METADATA_API_KEY)"
    s = sub.add_parser("serve", help=text, description=text, formatter_class=fmt)
    s.add_argument("dsn", nargs="?", help=dsn_help)
    s.add_argument("--port", type=int, default=8080, help="port to listen on (unless $PORT is set)")
    s.set_defaults(fn=cmd_serve)
    text = (
        "show a quota scope's usage this month and the database size; set the limits given "
        "(a limit not given stays as it is; 'none' = unlimited)"
    )
    s = sub.add_parser("quota", help=text, description=text, formatter_class=fmt)
    s.add_argument("dsn", nargs="?", help=dsn_help)
    s.add_argument("--scope", default="default", help="quota scope (the router's QUOTA_SCOPE)")
    s.add_argument("--max-requests", type=_limit, help="requests per calendar month (UTC), or none")
    s.add_argument("--max-egress-bytes", type=_limit, help="response bytes per calendar month (UTC), or none")
    s.add_argument(
        "--max-database-bytes",
        type=_limit,
        help="database size at which creates are refused (507), or none",
    )
    s.add_argument(
        "--warn-percent",
        type=int,
        choices=range(1, 101),
        metavar="1..100",
        help="replies carry X-Quota-Warning from this percent of --max-database-bytes",
    )
    s.set_defaults(fn=cmd_quota)
    text = (
        "PostgreSQL + migrations + router on this machine, and a Metaflow profile "
        "pointing at it; Ctrl-C (or closing the terminal) stops everything"
    )
    s = sub.add_parser(
        "local",
        help="embedded Postgres + migrations + router, for a quick try",
        description=text,
        formatter_class=fmt,
    )
    s.add_argument("--port", type=int, default=8080, help="the router's port on 127.0.0.1")
    s.add_argument("--db-port", type=int, help="PostgreSQL's port (default: a free one)")
    s.add_argument(
        "--data-dir",
        default="~/.metaflow-serverless/local",
        help="where the database, the API key and the instance lock live",
    )
    s.add_argument(
        "--postgres",
        choices=["auto", "pgserver", "debian"],
        default="auto",
        help="PostgreSQL build: the pgserver wheel's 16, Debian's postgresql-15, or "
        "auto (pgserver if installed)",
    )
    s.add_argument(
        "--profile", default="local", help="Metaflow profile to write while running (METAFLOW_PROFILE=<name>)"
    )
    s.add_argument("--no-profile", action="store_true", help="write no Metaflow profile")
    s.add_argument("--ui", action="store_true", help="also serve the Metaflow UI (python -m mfs ui)")
    s.add_argument("--ui-port", type=int, default=8083, help="the UI's port, with --ui")
    s.set_defaults(fn=cmd_local)
    text = (
        "delete whole old runs (with their steps, tasks, metadata and artifacts, one run per "
        "transaction); a running run and a run tagged --keep-tag are always kept"
    )
    s = sub.add_parser(
        "retain",
        help="delete old runs to stay inside the database's size",
        description=text,
        formatter_class=fmt,
    )
    s.add_argument("dsn", nargs="?", help=dsn_help)
    s.add_argument("--keep-days", type=int, help="delete runs older than this many days")
    s.add_argument("--keep-runs", type=int, help="keep only the newest N runs of each flow")
    s.add_argument("--keep-tag", default=KEEP_TAG, help="runs with this tag are never deleted ('' = none)")
    s.add_argument("--flow", help="only this flow (default: every flow)")
    s.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")
    s.add_argument(
        "--vacuum-full",
        action="store_true",
        help="afterwards give the freed space back to the disk (VACUUM FULL: each table is locked "
        "for seconds while it is rewritten; needed to go below a size limit, as the size counts "
        "freed space until then)",
    )
    s.add_argument(
        "--datastore-root",
        help="also delete each run's folder under this local Metaflow "
        "datastore root (METAFLOW_DATASTORE_SYSROOT_LOCAL); "
        "shared artifact contents stay",
    )
    s.set_defaults(fn=cmd_retain)
    text = (
        "the official Metaflow UI on this machine, backed by the metadata service and datastore "
        "of Metaflow's configuration (environment, else the profile); the API key stays here"
    )
    s = sub.add_parser(
        "ui", help="serve the Metaflow UI locally over the service", description=text, formatter_class=fmt
    )
    s.add_argument("--port", type=int, default=8083, help="port to listen on")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (other than loopback: anyone who can reach it sees your runs)",
    )
    s.add_argument(
        "--profile",
        help="Metaflow profile (config_<profile>.json; default: $METAFLOW_PROFILE, else config.json)",
    )
    s.add_argument(
        "--bundle",
        help="a local metaflow-ui-<version>.zip (default: $MFS_UI_BUNDLE, else the "
        "pinned release, downloaded once into ~/.metaflow-serverless/ui)",
    )
    s.add_argument("--bundle-sha256", help="require this sha256 of the zip (default: $MFS_UI_BUNDLE_SHA256)")
    s.set_defaults(fn=cmd_ui)
    text = "build the router's Cloudflare Worker bundle (needs npm)"
    s = sub.add_parser("worker-bundle", help=text, description=text, formatter_class=fmt)
    s.add_argument("--output", "-o", help="file to write (default: print the bundle)")
    s.set_defaults(fn=cmd_worker_bundle)
    text = "build the router as one JavaScript file for Deno (what compute=render runs)"
    s = sub.add_parser("deno-bundle", help=text, description=text, formatter_class=fmt)
    s.add_argument("--output", "-o", help="file to write (default: print the bundle)")
    s.set_defaults(fn=cmd_deno_bundle)
    text = (
        "wake a service that scaled to zero before a run: GET /healthcheck until it answers "
        "(no API key, no database work)"
    )
    s = sub.add_parser(
        "ping",
        help="wake the service before a run (Render free instances sleep)",
        description=text,
        formatter_class=fmt,
    )
    s.add_argument(
        "url",
        nargs="?",
        help="service URL (default: $METAFLOW_SERVICE_URL, else the "
        "profile $METAFLOW_PROFILE in $METAFLOW_HOME)",
    )
    s.add_argument("--timeout", type=float, default=180, help="seconds to keep trying")
    s.add_argument(
        "--request-timeout",
        type=float,
        default=75,
        help="seconds one request may wait (a waking service holds it)",
    )
    s.set_defaults(fn=cmd_ping)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    try:
        args.fn(args)
    except _expected_errors() as e:
        if os.environ.get("MFS_DEBUG"):
            raise
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        sys.exit(f"error: {first}")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
