"""metaflow-serverless: a Metaflow metadata service on serverless Postgres.

`mfs.migrations` applies the SQL in `sql/`; `mfs.router` starts the Deno router;
`python -m mfs --help` is the command line.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = REPO_ROOT / "sql"
ROUTER_DIR = REPO_ROOT / "functions" / "metadata-router"
