"""Byzantine bounds: how many of a peer's neighbors the rules assume to be Byzantine."""

from __future__ import annotations

import math


def byzantine_bound(degree: int, received: int = 0) -> int:
    """Per-node Byzantine bound f_i: the largest f with ``n >= 2f + 3`` where
    ``n = |N_i| + 1`` counts the peer and all its neighbors, i.e.
    ``f_i = max(0, floor((|N_i| - 2) / 2))`` (the Krum condition n > 2f + 2 applied to a
    node's closed neighborhood).

    ``degree`` is |N_i|; when it is unknown (0) or smaller than the number of payloads
    received, the number received is used instead. f_i bounds how many of a peer's
    neighbors the rules assume to be Byzantine, for every chunk index: a Byzantine
    neighbor may send every chunk, so the bound is not lowered when fewer payloads arrive.
    """
    n_neighbors = max(int(degree), int(received))
    return max(0, (n_neighbors - 2) // 2)


def eq13_bound(degree: int, received: int = 0, *, rho: float = 0.4, rho_central: float = 0.5) -> int:
    r"""Per-node Byzantine bound of Guo et al. 2022 (UBAR, Eq. (13); docs/REFERENCES.md):
    :math:`\hat n_i = \lceil |N_i| \cdot \min\{1 - \rho_i, \rho_{central}\}\rceil`, the number
    of Byzantine *neighbors* node i assumes (|N_i| counts neighbors only, not i itself).

    ``rho`` is :math:`\rho_i`, the assumed ratio of benign neighbors (Guo et al. set 0.4 for every
    benign node, Sec. VI-A); ``rho_central`` the largest Byzantine ratio the centralized
    rule tolerates (Guo et al. name it without a value). ``degree`` is |N_i|; when unknown (0)
    or below the number of payloads received, that number is used. A 1e-9 slack keeps
    products such as 10 * 0.6 = 6.000000000000001 from rounding up.
    """
    n_neighbors = max(int(degree), int(received))
    return max(0, math.ceil(n_neighbors * min(1.0 - rho, rho_central) - 1e-9))


def default_bound(f: int | None, ctx_degree: int, received: int, *, rho: float, rho_central: float, cap: int) -> int:
    """``f`` when given, else Eq. (13)'s bound (:func:`eq13_bound`) capped at ``cap``, the
    largest bound the rule can apply to the candidates at hand (never below 0)."""
    if f is not None:
        return f
    return max(0, min(eq13_bound(ctx_degree, received, rho=rho, rho_central=rho_central), cap))
