"""The ``byzemu`` commands, one module each; ``launch/cli.py`` registers them in one app.

Each command parses its options, calls the Python API (:mod:`launch.api`) or the module
that does the work, and prints; the shared options, error handling and output lines are
in :mod:`launch.commands.common`.
"""
