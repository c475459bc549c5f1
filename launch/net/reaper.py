"""Removes a run's network once its launcher is gone, however it went (SIGKILL included).

``python -m launch.net.reaper PREFIX`` is started by the launcher in a session of its own
(a Ctrl-C in the terminal does not reach it) with its stdin a pipe from the launcher. It
blocks reading that pipe; the read returns when the launcher closes it or dies, and the
reaper then kills whatever still runs in the namespaces of ``PREFIX`` and deletes them
and the launcher's link (``launch.net.namespaces.remove``, a no-op when the launcher has
cleaned up already).
"""

from __future__ import annotations

import sys

from launch.net.namespaces import remove


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m launch.net.reaper PREFIX", file=sys.stderr)
        return 2
    sys.stdin.buffer.read()  # EOF: the launcher closed the pipe or died
    remove(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
