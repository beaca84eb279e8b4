"""JSON result files (plans, sensitivity tables, latency profiles, search reports).

Written atomically (a temporary file, then a rename), so a crash never leaves half a file;
read with one-line `UserError`s naming the file and what it should have been.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from autoquant.errors import UserError


def write_json(path: str | os.PathLike, data: Any, indent: int = 1) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=indent) + "\n")
    os.replace(tmp, path)
    return path


def read_json(path: str | os.PathLike, what: str, hint: str = "") -> Any:
    """`what` names the file for errors ("plan file"); `hint` follows a not-found message."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}{hint}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"{what} {path} is not valid JSON: {e}") from None
