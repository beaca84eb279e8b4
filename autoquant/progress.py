"""Progress bars on stderr (so `--json` stdout stays clean), or nothing when disabled; one bar
per phase of long work (profiling, search, plan measurement)."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, SpinnerColumn, TaskID, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)
from rich.progress import Progress as _RichProgress


class Progress:
    """`with Progress(enabled) as ui: bar = ui.phase("label", total); ui.advance(bar)`."""

    def __init__(self, enabled: bool = True) -> None:
        self._bar = None
        if enabled:
            self._bar = _RichProgress(
                SpinnerColumn(), TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False,
            )

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.__exit__(exc_type, exc, tb)

    def phase(self, label: str, total: int) -> TaskID | None:
        return None if self._bar is None else self._bar.add_task(label, total=total)

    def advance(self, task: TaskID | None, n: int = 1) -> None:
        if self._bar is not None and task is not None:
            self._bar.advance(task, n)

    def note(self, text: str) -> None:
        """A line above the bars (rich markup); nothing when disabled."""
        if self._bar is not None:
            self._bar.console.print(text)
