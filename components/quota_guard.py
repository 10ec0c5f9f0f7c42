"""`QuotaGuard`: the monthly request and egress limits the router enforces for one scope.

Written into the database the router reads them from, through `mfs_api.set_quota_limits`
(`providers/quota_limits.py`), after the schema exists. Changing a limit updates in place;
changing the scope replaces the row's resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from .providers.quota_limits import QuotaLimits

TYPE = "metaflow-serverless:index:QuotaGuard"


@dataclass
class QuotaGuardArgs:
    database_url: pulumi.Input[str]
    scope: str
    max_requests: int
    max_egress_bytes: int


class QuotaGuard(pulumi.ComponentResource):
    def __init__(self, name: str, args: QuotaGuardArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(TYPE, name, {}, opts)
        self.scope = args.scope
        self.limits = QuotaLimits(
            f"{name}-limits",
            dsn=args.database_url,
            scope=args.scope,
            max_requests=args.max_requests,
            max_egress_bytes=args.max_egress_bytes,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.summary = {
            "scope": args.scope,
            "max_requests_per_month": args.max_requests,
            "max_egress_bytes_per_month": args.max_egress_bytes,
        }
        self.register_outputs(self.summary)
