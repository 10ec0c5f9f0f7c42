"""Files that hold secrets (API keys, connection strings): created 0600, never readable by others
even for an instant (a chmod after writing would leave a window at the umask's mode)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str, exclusive: bool = False) -> Path:
    """Writes text to path with mode 0600 from the moment the file exists."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its old mode otherwise
        f.write(text)
    return Path(path)
