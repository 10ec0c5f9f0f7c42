"""`QuotaGuard`: what the router enforces for one scope, and how long runs are kept.

* the monthly request and egress limits, and the database size limit with its warning
  threshold (sql/0006_quota.sql, sql/0040_size_guard.sql), written into the database the
  router reads them from (`providers/quota_limits.py`), after the schema exists;
* the retention policy (sql/0041_retention_policy.sql, `providers/retention_policy.py`):
  stored in the database, where `python -m mfs retain` without flags finds it, and applied
  once whenever it is deployed or changed. Nothing in a serverless stack runs on a timer:
  schedule `mfs retain` (the stack's `retention` output says how; docs/STACKS.md).

Changing a limit or the policy updates in place; changing the scope replaces the limits row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from .providers.quota_limits import QuotaLimits
from .providers.retention_policy import RetentionPolicy

TYPE = "metaflow-serverless:index:QuotaGuard"

# The database size each vendor's free plan allows (maxDatabaseBytes = 0 picks it); none where
# the stack does not know the plan (an existing Postgres) or there is none (local).
#   supabase: 500 MB per project, then read-only mode
#             (https://supabase.com/docs/guides/platform/database-size, "Free Plan behavior")
#   neon:     0.5 GB-month storage per project on the Free plan, counted in GiB
#             (https://neon.com/docs/introduction/plans, Free plan allowances)
#   cockroach: CockroachDB Basic's free usage, 10 GiB of storage per month
#             (https://www.cockroachlabs.com/docs/cockroachcloud/plan-your-cluster-basic, "Free vs. paid usage")
FREE_PLAN_DATABASE_BYTES = {
    "supabase": 500 * 1000**2,
    "neon": 512 * 1024**2,
    "cockroach": 10 * 1024**3,
}
VENDOR_DEFAULT = 0  # maxDatabaseBytes: the vendor's free plan
NO_LIMIT = -1  # maxDatabaseBytes: no size limit


def database_size_limit(database: str, configured: int) -> Optional[int]:
    """The size limit in bytes for the stack's database backend, or None for no limit."""
    if configured == NO_LIMIT:
        return None
    if configured == VENDOR_DEFAULT:
        return FREE_PLAN_DATABASE_BYTES.get(database)
    if configured < 0:
        raise pulumi.RunError(
            f"config maxDatabaseBytes={configured}: give bytes, 0 (the vendor's free plan) or -1 (no limit)"
        )
    return configured


@dataclass(frozen=True)
class Retention:
    """Whole runs older than keep_days, or beyond the newest keep_runs of their flow, are
    deleted; None = that rule is off; runs tagged keep_tag always stay."""

    keep_days: Optional[int] = None
    keep_runs: Optional[int] = None
    keep_tag: str = "keep"

    @classmethod
    def from_config(cls, keep_days: int, keep_runs: int, keep_tag: str) -> "Retention":
        """Config's 0 means "this rule is off"."""
        for key, value in (("retentionKeepDays", keep_days), ("retentionKeepRuns", keep_runs)):
            if value < 0:
                raise pulumi.RunError(f"config {key}={value}: give a whole number, 0 = off")
        return cls(keep_days or None, keep_runs or None, keep_tag)

    @property
    def enabled(self) -> bool:
        return self.keep_days is not None or self.keep_runs is not None

    def command(self) -> str:
        """The command that applies the stored policy: what to schedule (daily, say)."""
        return (
            'python -m mfs retain "$DATABASE_URL"   # applies the stack\'s policy; add --dry-run to preview'
        )


@dataclass
class QuotaGuardArgs:
    database_url: pulumi.Input[str]
    scope: str
    max_requests: int
    max_egress_bytes: int
    max_database_bytes: Optional[int] = None
    database_warn_percent: int = 80
    retention: Retention = Retention()


class QuotaGuard(pulumi.ComponentResource):
    def __init__(self, name: str, args: QuotaGuardArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, {}, opts)
        if not 1 <= args.database_warn_percent <= 100:
            raise pulumi.RunError(f"config databaseWarnPercent={args.database_warn_percent}: give 1..100")
        self.scope = args.scope
        self.limits = QuotaLimits(
            f"{name}-limits",
            dsn=args.database_url,
            scope=args.scope,
            max_requests=args.max_requests,
            max_egress_bytes=args.max_egress_bytes,
            max_database_bytes=args.max_database_bytes,
            database_warn_percent=args.database_warn_percent,
            opts=pulumi.ResourceOptions(parent=self),
        )
        r = args.retention
        self.retention = RetentionPolicy(
            f"{name}-retention",
            dsn=args.database_url,
            keep_days=r.keep_days,
            keep_runs=r.keep_runs,
            keep_tag=r.keep_tag,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.summary = {
            "scope": args.scope,
            "max_requests_per_month": args.max_requests,
            "max_egress_bytes_per_month": args.max_egress_bytes,
            "max_database_bytes": args.max_database_bytes,
            "database_warn_percent": args.database_warn_percent,
            "retention": {
                "keep_days": r.keep_days,
                "keep_runs": r.keep_runs,
                "keep_tag": r.keep_tag,
                "schedule": r.command()
                if r.enabled
                else "no retention policy (retentionKeepDays / retentionKeepRuns)",
            },
        }
        self.register_outputs(self.summary)
