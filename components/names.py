"""Names of vendor resources: `<projectName>-<stack>-<suffix>`, the suffix random once per stack
(RandomSuffix, kept in state). Unique across accounts and stacks, stable across `up`s."""

from __future__ import annotations

import re

import pulumi

from .providers.random_suffix import RandomSuffix
from .settings import Settings

SUFFIX_LEN = 6


class StackNames:
    def __init__(self, s: Settings):
        self.base = re.sub(r"[^a-z0-9-]+", "-", f"{s.project_name}-{s.stack}".lower()).strip("-")
        if not self.base[:1].isalpha():  # GCP ids and Cloud Run names start with a letter
            self.base = "m" + self.base
        self.suffix = RandomSuffix("name-suffix", SUFFIX_LEN).value

    def name(self, kind: str = "", max_len: int = 63) -> pulumi.Output:
        """`<project>-<stack>[-<kind>]-<suffix>`, the front cut to fit `max_len`."""
        stem = f"{self.base}-{kind}" if kind else self.base
        stem = stem[: max_len - SUFFIX_LEN - 1].rstrip("-")
        return self.suffix.apply(lambda sfx: f"{stem}-{sfx}")
