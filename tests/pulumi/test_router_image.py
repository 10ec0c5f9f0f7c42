"""The Deno the deployed router runs is the Deno the tests run."""

import re
import subprocess

import yaml

from harness import ROOT
from mfs.router import deno_binary


def test_the_router_image_is_the_deno_version_the_tests_use():
    image = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())["config"]["routerImage"]["default"]
    tested = subprocess.run([deno_binary(), "--version"], capture_output=True, text=True, timeout=60).stdout
    version = re.match(r"deno (\d+\.\d+\.\d+)", tested).group(1)
    assert image == f"docker.io/denoland/deno:{version}"
