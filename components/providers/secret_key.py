"""Dynamic provider `RandomSecret`: a random token generated once at create, kept in state.

Written here instead of adding pulumi-random (one more plugin to download) for one value.
The output is marked secret with `additional_secret_outputs`, since the dynamic provider host
would otherwise return it as plaintext.
"""

from __future__ import annotations

import secrets
from typing import Optional

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider


class RandomSecretProvider(ResourceProvider):
    def diff(self, _id, olds, news):
        changed = int(olds.get("length", 0)) != int(news.get("length", 0))
        return DiffResult(changes=changed, replaces=["length"] if changed else [])

    def create(self, props):
        value = secrets.token_urlsafe(int(props["length"]))
        return CreateResult(f"secret-{secrets.token_hex(4)}", {**props, "value": value})


class RandomSecret(Resource, module="mfs", name="RandomSecret"):
    value: pulumi.Output[str]

    def __init__(self, name: str, length: int = 32, opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["value"]))
        super().__init__(RandomSecretProvider(), name, {"length": length, "value": None}, opts)
