"""The live progress line of a sweep: how many runs are done and, for each run in progress,
its last round and honest accuracy, read from its results folder::

    [3/12 done] running: defense.name=krum/rep0 r7/30 0.9112 | defense.name=median/rep1 r2/30 -

On a terminal the line is rewritten in place about once a second; elsewhere (a log file, a
pipe) it is printed as a plain line at most every ``every`` seconds, and only when it
changed (and not while no run is in progress). The runs' end lines go through
:meth:`SweepProgress.echo`, which clears the line on a terminal first. A run counts as
running once it has written its ``config.json`` or a round since the sweep started (a run
waiting in the pool has no folder yet; a run going on from a checkpoint has an older one).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from launch.sweeps.sweepfile import Run
from protocol.rundir import RunDir

#: seconds between redraws of the line on a terminal
TTY_INTERVAL = 1.0


class SweepProgress:
    """The progress line of the runs ``todo`` under ``out``, ``done`` of ``total`` done."""

    def __init__(
        self,
        out: Path,
        todo: Sequence[Run],
        *,
        total: int,
        done: int,
        every: float = 10.0,
        stream: TextIO | None = None,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.out = Path(out)
        self.todo = list(todo)
        self.total = total
        self.done = done
        self.every = every
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._echo = echo
        self._ended: set[str] = set()
        self._since = time.time()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last = ""

    # ------------------------------------------------------------------ the line
    def _started(self, run_dir: RunDir) -> bool:
        for path in (run_dir.config_json, run_dir.rounds):
            try:
                if path.stat().st_mtime >= self._since - 1.0:
                    return True
            except OSError:
                continue
        return False

    def _part(self, run: Run) -> str:
        run_dir = RunDir(self.out / run.rel_dir)
        records = run_dir.records()
        last = records[-1]["round"] if records else 0
        evaluated = next((r for r in reversed(records) if "test_accuracy" in r.get("honest", {})), None)
        acc = f"{evaluated['honest']['test_accuracy']['mean']:.4f}" if evaluated else "-"
        return f"{run.rel_dir} r{last}/{run.cfg.rounds} {acc}"

    def line(self) -> str:
        """The line as it stands now."""
        running = [r for r in self.todo if r.rel_dir not in self._ended and self._started(RunDir(self.out / r.rel_dir))]
        parts = " | ".join(self._part(r) for r in running) or "-"
        return f"[{self.done}/{self.total} done] running: {parts}"

    # ------------------------------------------------------------------ events
    def ended(self, run: Run, text: str) -> None:
        """``run`` ended: count it and print its end line ``text``."""
        with self._lock:
            self.done += 1
            self._ended.add(run.rel_dir)
        self.echo(text)

    def echo(self, text: str) -> None:
        """Print ``text`` (through the sweep's echo), the progress line cleared around it."""
        with self._lock:
            if self.tty and self._last:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
                self._last = ""
            self._echo(text)

    def _draw(self) -> None:
        text = self.line()
        if text.endswith("running: -") and not self.tty:
            return  # nothing in progress: between runs, or all done
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[2K" + text)
            elif text != self._last:
                self.stream.write(text + "\n")
            else:
                return
            self._last = text
            self.stream.flush()

    def _loop(self) -> None:
        interval = TTY_INTERVAL if self.tty else self.every
        while not self._stop.wait(interval):
            self._draw()

    def start(self) -> None:
        """Draw the line from a background thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._loop, name="sweep-progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop drawing; on a terminal, clear the line."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            if self.tty and self._last:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
