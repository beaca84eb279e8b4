"""Errors a user can cause. The CLI prints them as one line and exits with `exit_code`.

Anything else that escapes is a bug and keeps its traceback.

Library code names its own parameters, never CLI flags: a message marks each parameter as
`{name}` and lists it in `params`. `str(error)` reads `name` (what a Python caller passed);
`error.for_cli()` reads the flag (`--name` with dashes, or what the command mapped it to with
`error.with_flags`), which is what `autoquant` prints.
"""

from __future__ import annotations

from collections.abc import Mapping


def default_flag(param: str) -> str:
    """The CLI flag a parameter maps to unless a command says otherwise: eval_tokens -> --eval-tokens."""
    return "--" + param.replace("_", "-")


class UserError(Exception):
    """Bad input: a budget, a model id, a file, an unsupported architecture. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, params: tuple[str, ...] = ()) -> None:
        self.template = message
        self.params = params
        self.flags: dict[str, str] = {}
        super().__init__(self._render({}))

    def _render(self, names: Mapping[str, str]) -> str:
        # plain replacement, not str.format: messages quote user paths and values that may hold braces
        out = self.template
        for p in self.params:
            out = out.replace("{" + p + "}", names.get(p, p))
        return out

    def with_flags(self, flags: Mapping[str, str]) -> UserError:
        """Name parameters by these flags on the command line (where not `--name`); returns self."""
        self.flags.update(flags)
        return self

    def for_cli(self) -> str:
        return self._render({p: self.flags.get(p, default_flag(p)) for p in self.params})


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
