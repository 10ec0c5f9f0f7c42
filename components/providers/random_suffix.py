"""Dynamic provider `RandomSuffix`: a short lowercase hex string chosen once and kept in state.

Names that must be unique (B2 bucket names across all of Backblaze's customers; R2 buckets,
GCP service accounts, secrets, Cloud Run services and Workers of two stacks in one account)
end with it, so they are unique yet stable from one `up` to the next (components/names.py).
"""

from __future__ import annotations

import secrets
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class RandomSuffixProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        changed = int(olds.get("length", 0)) != int(news.get("length", 0))
        return DiffResult(changes=changed, replaces=["length"] if changed else [])

    def create(self, props):
        value = secrets.token_hex(int(props["length"]))[: int(props["length"])]
        return CreateResult(f"suffix-{value}", {**props, "value": value})


class RandomSuffix(Resource, module="mfs", name="RandomSuffix"):
    value: pulumi.Output[str]

    def __init__(self, name: str, length: int = 6, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__(RandomSuffixProvider(), name, {"length": length, "value": None}, opts)
