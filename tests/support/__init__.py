"""Helpers shared by the test modules (test modules import from here, never from each other).

* :mod:`tests.support.harness` -- the raw-frame protocol harness (``ScriptedPeer``, ``Cluster``,
  ``read_results``, ``read_rounds``), written from docs/PROTOCOL.md without importing byzemu.
* :mod:`tests.support.datagen` -- small dataset folders in the real on-disk formats.
* :mod:`tests.support.runs` -- the TOML text of small runs (``small_config``).
* :mod:`tests.support.foreign_peer` -- a complete peer on the harness (the conformance kit's).
* :mod:`tests.support.waiting` -- ``wait_until``, polling for an event with a deadline.
"""

from __future__ import annotations

import sys
from pathlib import Path

#: the ``byzemu`` command of the interpreter running the tests
BYZEMU = str(Path(sys.executable).parent / "byzemu")
