"""The math every attack shares: chunk slices, benign statistics, ALIE's z, Krum, triggers.

Attacks read as policy; the arithmetic lives here. Conventions:

* Vectors are worked on in ``float64`` (hand-made test values stay exact, huge crafted
  values stay finite in squared distances); :func:`to_f32` makes the new float32 array
  that is sent. Nothing here modifies its arguments.
* A *benign stack* is a ``(k, d)`` float64 array of the chunks of one index that the
  attacker knows from honest peers (:meth:`Knowledge.benign_stack`). When it knows none
  (k = 0) :func:`reference_stack` substitutes its own chunk as the only sample, so every
  knowledge-based attack still produces a payload (documented in docs/ATTACKS.md).
* Spread is the *sample* standard deviation (ddof = 1), as in Baruch et al.'s reference
  code (``torch.std``); with one sample it is 0.
* Randomness comes only from the generators the caller passes (``ctx.rng`` for crafting,
  the trainer's ``torch.Generator`` for batches).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

import numpy as np
import torch

from peer.attacks.base import AttackContext
from peer.defenses import ops as receiver_ops  # the Krum a receiver runs, see "Krum (local)"
from peer.validation import (  # noqa: F401  (re-exported: attacks call ops.check_*)
    check_choice,
    check_finite,
    check_int,
    check_positive,
    check_range,
)

# ----------------------------------------------------------------------------- chunks


def chunk(vector: np.ndarray, bounds: Sequence[tuple[int, int]], index: int) -> np.ndarray:
    """Slice ``index`` of a whole-model vector as a new float64 array."""
    lo, hi = bounds[index]
    return np.asarray(vector[lo:hi], dtype=np.float64).copy()


def own_chunk(payload: dict[int, np.ndarray], index: int) -> np.ndarray:
    """The honest payload of chunk ``index`` (this round's trained chunk) as float64."""
    return np.asarray(payload[index], dtype=np.float64).reshape(-1).copy()


def before_chunk(ctx: AttackContext, index: int) -> np.ndarray:
    """Chunk ``index`` of the attacker's model before this round's local training."""
    return chunk(ctx.own_before, ctx.bounds, index)


def update(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """``after - before`` in float64 (an update, i.e. a model difference)."""
    return np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)


def to_f32(vec: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A new float32 array of ``like``'s shape holding ``vec``."""
    return np.array(vec, dtype=np.float32).reshape(np.shape(like))


# ----------------------------------------------------------------------------- benign statistics


def reference_stack(ctx: AttackContext, index: int, own: np.ndarray) -> np.ndarray:
    """The benign stack of chunk ``index``; with no benign chunk known (k = 0), the own
    chunk ``own`` as the only row (the attacker's honestly trained chunk is its best
    available sample of a benign chunk)."""
    stack = ctx.knowledge.benign_stack(index, ctx.bounds)
    if stack.shape[0] == 0:
        return np.asarray(own, dtype=np.float64).reshape(1, -1).copy()
    return stack


def coord_mean(stack: np.ndarray) -> np.ndarray:
    """Coordinate-wise mean of a ``(k, d)`` stack, k >= 1."""
    return np.asarray(stack, dtype=np.float64).mean(axis=0)


def coord_std(stack: np.ndarray) -> np.ndarray:
    """Coordinate-wise sample standard deviation (ddof = 1); zeros when k = 1."""
    x = np.asarray(stack, dtype=np.float64)
    if x.shape[0] < 2:
        return np.zeros(x.shape[1])
    return x.std(axis=0, ddof=1)


def coord_max(stack: np.ndarray) -> np.ndarray:
    """Coordinate-wise maximum of a ``(k, d)`` stack, k >= 1."""
    return np.asarray(stack, dtype=np.float64).max(axis=0)


# ----------------------------------------------------------------------------- ALIE


def alie_supporters(n: int, f: int) -> int:
    """Baruch et al.'s s = floor(n/2 + 1) - f: benign supporters the attackers need."""
    return (n // 2 + 1) - f


def alie_z(n: int, f: int) -> float:
    r"""z_max of "A Little Is Enough" (Baruch et al., NeurIPS 2019, Algorithm 3).

    With n participants of which f are Byzantine, :math:`s = \lfloor n/2 + 1\rfloor - f` and
    :math:`z_{max} = \Phi^{-1}\big((n - f - s) / (n - f)\big)` (the largest z with
    :math:`\Phi(z) <` that ratio). Edge cases, so that the attack never crashes:

    * s <= 0 (Byzantine majority: no supporter needed) -> s is taken as 1, the smallest
      meaningful supporter count, which keeps the quantile below 1;
    * n - f - s <= 0 (not enough benign peers to support any shift) -> z = 0 (the mean);

    z may be negative for small n (e.g. n = 4, f = 1: s = 2, Phi^-1(1/3) = -0.43), which
    is what the formula gives; it is returned as is.
    """
    if n < 1 or f < 0:
        raise ValueError(f"alie_z needs n >= 1 and f >= 0, got n={n}, f={f}")
    honest = n - f
    s = max(alie_supporters(n, f), 1)
    if honest <= 0 or honest - s <= 0:
        return 0.0
    return NormalDist().inv_cdf((honest - s) / honest)


# ----------------------------------------------------------------------------- Krum (local)
# One implementation of Krum: the receivers' (peer.defenses.ops: squared distances as exact
# differences, no Gram-matrix cancellation; scores summed in ascending order; ties to the
# lower position). An attacker's local probe runs it on the rows it assumes a receiver has.

krum_feasible = receiver_ops.krum_feasible


def pairwise_sq_dists(x: np.ndarray) -> np.ndarray:
    """``(n, n)`` squared Euclidean distances between the rows of ``x``
    (:func:`peer.defenses.ops.pairwise_sq_dists`, as a float64 numpy array)."""
    return receiver_ops.pairwise_sq_dists(_rows(x)).numpy()


def _rows(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(x, dtype=np.float64, ndmin=2))


def krum_probe(benign: np.ndarray, copies: int, f: int) -> Callable[[np.ndarray], bool]:
    """A test ``crafted -> bool``: does Krum over the ``benign`` rows followed by
    ``copies`` copies of ``crafted`` select a crafted row? Ties go to the benign rows
    (listed first), so the crafted vector must strictly win, as it must against a
    receiver that breaks ties by sender. Benign-benign distances are computed once."""
    b = _rows(benign)
    k = b.shape[0]
    benign_d2 = receiver_ops.pairwise_sq_dists(b).tolist()

    def picks(crafted: np.ndarray) -> bool:
        c = torch.from_numpy(np.asarray(crafted, dtype=np.float64).reshape(-1))
        cross = receiver_ops.sq_dists_to(b, c).tolist()
        d2 = [row + [cross[i]] * copies for i, row in enumerate(benign_d2)]
        d2 += [cross + [0.0] * copies for _ in range(copies)]
        return receiver_ops.argmin(receiver_ops.krum_scores(d2, f)) >= k

    return picks


def krum_picks_crafted(benign: np.ndarray, crafted: np.ndarray, copies: int, f: int) -> bool:
    """One-shot :func:`krum_probe`."""
    return krum_probe(benign, copies, f)(crafted)


def largest_accepted(
    accepted: Callable[[float], bool], start: float, *, tolerance: float, max_halvings: int = 64
) -> float | None:
    """Halve ``start`` until ``accepted(value)`` holds; the first accepted value, or None
    when none >= ``tolerance`` is (at most ``max_halvings`` halvings)."""
    value = start
    for _ in range(max_halvings + 1):
        if value < tolerance:
            return None
        if accepted(value):
            return value
        value /= 2.0
    return None


# ----------------------------------------------------------------------------- triggers

CORNERS = ("bottom_right", "top_left", "top_right", "bottom_left")
#: pixels left free between a named corner's trigger and the image border
CORNER_MARGIN = 1


def trigger_origin(position: str | Sequence[int], size: int, height: int, width: int) -> tuple[int, int]:
    """Top-left pixel (row, col) of a ``size`` x ``size`` trigger; ValueError if any of it
    falls outside a ``height`` x ``width`` image. Named corners keep a 1-pixel margin."""
    m = CORNER_MARGIN
    if isinstance(position, str):
        row = m if position.startswith("top") else height - size - m
        col = m if position.endswith("left") else width - size - m
        where = f"{position!r} (1-pixel margin)"
    else:
        row, col = int(position[0]), int(position[1])
        where = f"[{row}, {col}]"
    if row < 0 or col < 0 or row + size > height or col + size > width:
        raise ValueError(f"trigger of size {size} at {where} does not fit the {height}x{width} image")
    return row, col


def square_mask(height: int, width: int, origin: tuple[int, int], size: int) -> torch.Tensor:
    """Boolean (height, width) mask of the square trigger."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    r, c = origin
    mask[r : r + size, c : c + size] = True
    return mask


def split_mask(mask: torch.Tensor, parts: int) -> list[torch.Tensor]:
    """Split the True pixels of ``mask``, in row-major order, into ``parts`` contiguous,
    near-equal groups (``numpy.array_split``); their union is ``mask``. For a square of
    side s and parts = s this gives one horizontal strip (row) per part."""
    pixels = torch.nonzero(mask, as_tuple=False)
    if not 1 <= parts <= len(pixels):
        raise ValueError(f"cannot split a trigger of {len(pixels)} pixels into parts={parts}")
    out = []
    for group in np.array_split(np.arange(len(pixels)), parts):
        part = torch.zeros_like(mask)
        rows = pixels[torch.as_tensor(group, dtype=torch.long)]
        part[rows[:, 0], rows[:, 1]] = True
        out.append(part)
    return out


def stamp(
    images: torch.Tensor,
    mask: torch.Tensor,
    value: float | torch.Tensor,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """New tensor: ``images`` (B, ..., H, W) with the pixels of ``mask`` (H, W) set to
    ``value`` in every channel (a float, or a (C, 1, 1) tensor with one value per
    channel), for the samples flagged in ``rows`` (bool (B,); all when None)."""
    sel = mask
    if rows is not None:
        sel = rows.view(-1, *([1] * (images.dim() - 1))) & mask
    return torch.where(sel, torch.as_tensor(value, dtype=images.dtype), images)


def poison_count(fraction: float, batch: int) -> int:
    """ceil(fraction * batch), robust to float noise (0.3 * 10 -> 3), at most ``batch``."""
    return min(batch, math.ceil(round(fraction * batch, 9)))


def pick_rows(batch: int, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Boolean (batch,) flags of the first ceil(fraction * batch) samples of a permutation
    drawn from ``generator``."""
    rows = torch.zeros(batch, dtype=torch.bool)
    rows[torch.randperm(batch, generator=generator)[: poison_count(fraction, batch)]] = True
    return rows


# ----------------------------------------------------------------------------- IEEE-754 bits


def flip_bits(vec: np.ndarray, bits: Sequence[int], where: np.ndarray | None = None) -> np.ndarray:
    """New float32 array: ``vec`` with the given bit positions (0 = least significant
    mantissa bit, 31 = sign bit of IEEE-754 binary32) XOR-ed, at the flagged coordinates
    (all when ``where`` is None)."""
    raw = np.array(vec, dtype=np.float32).reshape(-1).view(np.uint32).copy()
    mask = np.uint32(sum(1 << b for b in set(bits)))
    if where is None:
        raw ^= mask
    else:
        raw[where] ^= mask
    return raw.view(np.float32).reshape(np.shape(vec))


# ----------------------------------------------------------------------------- parameter checks
# The generic checks live in peer.validation (shared with the defenses); they are
# re-exported here so that attacks call every check as ``ops.check_*``.


def check_class(name: str, value: int, num_classes: int) -> int:
    """``value`` if it is a class of a dataset with ``num_classes`` classes."""
    if not 0 <= value < num_classes:
        raise ValueError(f"{name}={value} is not a class of this dataset (0..{num_classes - 1})")
    return value


def check_position(value: object) -> str | tuple[int, int]:
    """A named corner or a ``[row, col]`` pair of integers (fit is checked in bind)."""
    if isinstance(value, str):
        return check_choice("trigger_position", value, CORNERS)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return (
                check_int("trigger_position[0]", value[0], minimum=-(2**31)),
                check_int("trigger_position[1]", value[1], minimum=-(2**31)),
            )
        except ValueError:
            pass
    raise ValueError(f"trigger_position={value!r} must be one of {', '.join(CORNERS)} or [row, col]")
