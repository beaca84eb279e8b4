"""Where a study lives: `--storage` URLs turned into Optuna storages.

    sqlite:///runs/m/s/study.db       the default: one machine, a few processes at once
    journal:///shared/dir/study.log   Optuna's JournalStorage over one append-only file: many
                                      processes on one machine, or machines sharing a file system
    postgresql://user@host/db         many machines through a database server (psycopg 3:
                                      `pip install autoquant[postgres]`)

Only Optuna's own storages: this module picks one and its connection settings.
"""

from __future__ import annotations

import importlib.util
import random
import time
from pathlib import Path

import optuna

from autoquant.errors import UserError

JOURNAL = "journal://"
# Concurrent SQLite writers wait this long for the file lock instead of failing at once
# with "database is locked" (SQLite's default is 5 s, too short behind a busy flush).
SQLITE_BUSY_TIMEOUT_S = 120


def normalise_url(url: str) -> str:
    """`postgresql://` and `postgres://` go through psycopg 3 when psycopg2 is not installed
    (SQLAlchemy's plain `postgresql://` means psycopg2); explicit drivers are kept."""
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            rest = url.removeprefix(scheme)
            if importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
                return "postgresql+psycopg://" + rest
            return "postgresql://" + rest
    return url


def journal_path(url: str) -> Path | None:
    """The file of a `journal:///path` (or `journal://relative/path`) URL, else None."""
    if not url.startswith(JOURNAL):
        return None
    path = url.removeprefix(JOURNAL)
    if not path:
        raise UserError(f"--storage {url}: name the journal file, e.g. journal:///shared/study.log")
    return Path(path)


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """The Optuna storage for `url`; UserError (one line) for a bad URL or a missing driver."""
    journal = journal_path(url)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend

        journal.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return _rdb(url, {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}})
    if "://" not in url:
        raise UserError(
            f"--storage {url}: not a storage URL; use sqlite:///FILE, journal:///FILE or postgresql://USER@HOST/DB"
        )
    # pool_pre_ping: a server restart between flushes costs a reconnect, not the run.
    return _rdb(normalise_url(url), {"pool_pre_ping": True})


def _rdb(url: str, engine_kwargs: dict, attempts: int = 5) -> optuna.storages.RDBStorage:
    """Workers started together on an empty database all create Optuna's tables; all but one
    lose that race (a unique or duplicate-table violation) and then find the tables made."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (IntegrityError, ProgrammingError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random())
    raise AssertionError("unreachable")
