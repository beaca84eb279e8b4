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
