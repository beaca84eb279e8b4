"""Every result file a run writes: plans, tables, profiles, reports, plots, cache lines.

Whole files are written atomically: into a fresh temporary file beside the target, then
renamed over it, so a crash or a full disk leaves the old file or the new one, never half of
one; concurrent writers of one file each use their own temporary name. A failed write raises
`OutputError`: one line naming the file and the reason, and saying the old file is intact.

JSON files are read with one-line `UserError`s naming the file and what it should have been.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autoquant.errors import OutputError, UserError


def _write_failed(path: Path, e: OSError) -> OutputError:
    kept = "the previous file is unchanged" if path.exists() else "nothing was written"
    return OutputError(f"cannot write {path}: {e.strerror or e} ({kept}; free disk space or choose another directory)")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write to; renamed over `path` when the block completes.

    The temporary name keeps the target's suffix (matplotlib picks the format from it).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise _write_failed(path, e) from None
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_failed(path, e) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """`write(tmp)` fills a temporary file (e.g. `fig.savefig`), which then replaces `path`."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must not land before the data does
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, indent: int = 1) -> Path:
    return write_text(path, json.dumps(data, indent=indent) + "\n")


def append_lines(path: str | os.PathLike, lines: list[str], *, new_line_first: bool = False) -> None:
    """Append whole lines in one write (concurrent appenders never interleave mid-line).

    A write cut short (full disk, a kill) leaves a torn last line, which readers skip
    (`warn_skipped`) and the next append starts after.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(("\n" if new_line_first else "") + "\n".join(lines) + "\n")
            fh.flush()
    except OSError as e:
        raise OutputError(
            f"cannot append to {path}: {e.strerror or e} (results finished before are kept; "
            "free disk space and re-run to resume)"
        ) from None


def ends_mid_line(path: str | os.PathLike) -> bool:
    """Whether the file's last write was cut short (a missing file or an empty one was not)."""
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except FileNotFoundError:
        return False


def read_lines(path: str | os.PathLike, parse: Callable[[dict], Any], what: str) -> bool:
    """Call `parse` on each JSON line of `path`; a line that fails (torn by a kill, or corrupt) is
    skipped with one warning naming `what` happens to it. True when the file ends mid-line: the
    next `append_lines` must start a new one (`new_line_first`)."""
    path = Path(path)
    if not path.exists():
        return False
    torn = ends_mid_line(path)
    skipped = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                parse(json.loads(line))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                skipped += 1
    warn_skipped(path, skipped, what)
    return torn


def warn_skipped(path: str | os.PathLike, n: int, what: str) -> None:
    """One warning line on stderr for unreadable records that are skipped and recomputed."""
    if n:
        print(f"autoquant: warning: skipped {n} unreadable line(s) of {path} ({what})", file=sys.stderr)


def read_json(path: str | os.PathLike, what: str, hint: str = "") -> Any:
    """`what` names the file for errors ("plan file"); `hint` follows a not-found message."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}{hint}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {path} is not valid JSON (truncated or corrupt): {e}") from None
