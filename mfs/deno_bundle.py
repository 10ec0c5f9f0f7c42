"""The router as one JavaScript file for Deno: `deno bundle` of `functions/metadata-router/main.ts`
with postgres.js inside, so the file runs with no download (`--no-remote --no-npm`).

This is what `compute=render` delivers to the public Deno image as a secret file. Minified: it
then holds no path of the machine that built it (esbuild's module comments name the npm cache),
so the same source gives the same bytes everywhere. `deno bundle` is marked experimental in
Deno 2.9; the tests run its output with real Metaflow traffic.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import ROUTER_DIR
from .router import ENTRY, deno_binary

# what runs the bundle: no module may be fetched when a scaled-to-zero service wakes
RUN_FLAGS = ["run", "--no-remote", "--no-npm", "--allow-net", "--allow-env", "--allow-read"]


def bundle(out_file: Path) -> Path:
    subprocess.run(
        [
            deno_binary(),
            "bundle",
            "--quiet",
            "--platform=deno",
            "--no-lock",
            "--no-config",
            "--minify",
            "--keep-names",
            f"--output={out_file}",
            ENTRY.name,
        ],
        cwd=ROUTER_DIR,
        check=True,
    )
    return out_file
