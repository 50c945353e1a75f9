"""Progress reporting that stages call without knowing whether anyone is watching."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn, Task, TaskID


class Bar(Protocol):
    def advance(self, n: float = 1) -> None: ...


class Reporter(Protocol):
    def bar(
        self, label: str, total: float | None, unit: str = "shards"
    ) -> contextlib.AbstractContextManager[Bar]: ...

    def note(self, text: str) -> None: ...


class _NullBar:
    def advance(self, n: float = 1) -> None:
        return None


class NullReporter:
    """For the Python API and tests: silent."""

    @contextlib.contextmanager
    def bar(self, label: str, total: float | None, unit: str = "shards") -> Iterator[Bar]:
        yield _NullBar()

    def note(self, text: str) -> None:
        return None


class _RichBar:
    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress = progress
        self._task = task

    def advance(self, n: float = 1) -> None:
        self._progress.advance(self._task, n)


def _rate_column(unit: str) -> ProgressColumn:
    from rich.progress import ProgressColumn as Base
    from rich.text import Text

    class RateColumn(Base):
        """Items per second, in the bar's own unit (rows/s, shards/s, images/s)."""

        def render(self, task: Task) -> Text:
            speed = task.speed
            return Text("" if not speed else f"{speed:,.0f} {unit}/s", style="cyan")

    return RateColumn()


class RichReporter:
    """Progress bars on stderr with rate and ETA; shown for anything that takes more than a moment."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.quiet = quiet

    @contextlib.contextmanager
    def bar(self, label: str, total: float | None, unit: str = "shards") -> Iterator[Bar]:
        if self.quiet:
            yield _NullBar()
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        columns = (
            TextColumn("[bold]{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(f"{unit}"),
            _rate_column(unit),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=False) as progress:
            task = progress.add_task(label, total=total)
            yield _RichBar(progress, task)

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text)
