"""The one base class of errors caused by the user's input.

A bad config field, an unknown attack, a data folder without its files, a model that
does not fit the dataset, a topology that cannot be built: each layer raises its own
subclass of :class:`UserError` (``ConfigError``, ``RegistryError``, ``DatasetError``,
``ModelError``, ``TopologyError``, ``ShardingError``, ``RolesError``) with a one-line
message saying what is wrong and how to fix it, and the command line catches this one
type: it prints ``error: <message>`` and exits with status 2, without a traceback.

It lives in the lowest layer (``protocol``) so that every layer above can subclass it.
It is a ``ValueError``, as each of those errors was before.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad user input; the message is one line saying what is wrong and how to fix it."""


class ConfigError(UserError):
    """A configuration value is missing, unknown, mistyped or out of range."""
