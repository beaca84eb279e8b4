"""Errors a user can cause. The CLI prints them as one line and exits with `exit_code`.

Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: a budget, a model id, a file, an unsupported architecture. Exit code 2."""

    exit_code = 2


class NoPlanFitsError(UserError):
    """The budgets admit no plan. Exit code 3, so scripts can tell it from bad input."""

    exit_code = 3


class OutputError(UserError):
    """A result could not be written (full disk, no permission). Exit code 1; the message says
    which file and that the previous one is intact (every write is atomic, autoquant/jsonfile.py)."""

    exit_code = 1


class WorkerMemoryError(UserError):
    """Profiling tasks that ran out of memory on every attempt, reported after all the others
    finished (and were cached). Exit code 1: re-running with more memory resumes."""

    exit_code = 1
