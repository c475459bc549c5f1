"""Evidence per neighbor: what ``granularity = "neighbor"`` gives the rules that decide
whom to trust.

With the default ``granularity = "chunk"`` a rule judges every chunk index on its own,
over the payloads received for that index (often one or two on a sparse graph). With
``"neighbor"`` a peer judges each *sender* once per round from everything that sender
sent this round (payloads from one sender share its identity), then aggregates every
chunk index over the senders it trusts:

1. :func:`gather` builds one :class:`SenderEvidence` per sender: its received chunks
   concatenated in index order (``payload``), the own model's values on the same
   coordinates (``own``, and ``before`` for updates), and ``padded``, the whole own
   vector with the sender's chunks substituted. ``padded`` makes senders that sent
   different chunk indices comparable: the distance of ``padded`` to the own vector is
   the distance on the sender's coordinates exactly, and the distance between two
   senders' ``padded`` vectors is taken on the union of their coordinates, with the own
   values where one of them sent nothing. Cosines and norms use ``payload`` against
   ``own`` (the padded coordinates would count the own values as agreement).
2. The rule's ``judge`` turns the evidence into a :class:`Verdict`: a weight per sender
   (0 = not trusted), a weight for the own chunk, optional per-sender scales.
3. Per chunk index the rule's ``combine_judged`` aggregates the kept payloads by the
   verdict (default :func:`weighted_rows`); where no trusted row is present (a trusted
   sender did not send that index) the own chunk is kept, as every chunk-level rule does
   with no payload.

Chunks holding NaN/Inf are left out of the evidence (as the chunk-level template drops
them); a sender left with none is not judged and gets weight 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from peer.defenses.ops import flat, mean_rows
from peer.defenses.probe import ModelProbe


@dataclass(frozen=True)
class RoundView:
    """Everything a peer holds when it aggregates a round: the whole own vector after
    (``own``) and before (``own_before``) local training, every payload received
    (``{sender: {index: chunk}}``), the chunk ``bounds``, and whole-model hooks: the loss
    of a whole parameter vector on the fixed local batch (``loss_with``) or on the last
    training batch (``sample_loss_with``), and a probe whose span is the whole model."""

    node: int
    round: int
    degree: int
    own: torch.Tensor
    own_before: torch.Tensor | None
    received: dict[int, dict[int, torch.Tensor]]
    bounds: Sequence[tuple[int, int]]
    loss_with: Callable[[torch.Tensor], float] | None = None
    sample_loss_with: Callable[[torch.Tensor], float] | None = None
    probe: ModelProbe | None = None


@dataclass(frozen=True)
class SenderEvidence:
    """One sender's round, float64: its chunks ``indices`` (ascending) concatenated as
    ``payload``, the own values on those coordinates (``own``, ``before`` = before
    training, None when unknown), and ``padded`` = the own vector with its chunks in."""

    sender: int
    indices: tuple[int, ...]
    payload: torch.Tensor
    own: torch.Tensor
    before: torch.Tensor | None
    padded: torch.Tensor

    def whole(self) -> torch.Tensor:
        """``padded`` as float32, for the whole-model loss hooks and probe."""
        return self.padded.to(torch.float32)


@dataclass(frozen=True)
class Verdict:
    """A neighbor-level decision: ``weights[sender]`` (0 or absent = not trusted), the own
    chunk's weight ``own`` and optional per-sender ``scales`` of its payloads."""

    weights: dict[int, float]
    own: float = 1.0
    scales: dict[int, float] = field(default_factory=dict)

    def trusted(self) -> list[int]:
        """Senders with a positive weight, by id."""
        return sorted(s for s, w in self.weights.items() if w > 0.0)


def gather(view: RoundView) -> list[SenderEvidence]:
    """Per sender (by id), the evidence of its finite chunks of this round."""
    own = flat(view.own)
    before = flat(view.own_before) if view.own_before is not None else None
    out = []
    for sender in sorted(view.received):
        chunks = view.received[sender]
        indices = tuple(c for c in sorted(chunks) if bool(torch.isfinite(chunks[c]).all()))
        if not indices:
            continue
        padded = own.clone()
        for c in indices:
            lo, hi = view.bounds[c]
            padded[lo:hi] = flat(chunks[c])
        coords = torch.cat([torch.arange(*view.bounds[c]) for c in indices])
        out.append(
            SenderEvidence(
                sender=sender,
                indices=indices,
                payload=padded[coords],
                own=own[coords],
                before=before[coords] if before is not None else None,
                padded=padded,
            )
        )
    return out


def candidate_stack(view: RoundView, evidence: Sequence[SenderEvidence]) -> torch.Tensor:
    """``(1 + m, P)`` float64: the own vector, then each sender's ``padded`` vector."""
    return torch.stack([flat(view.own), *(e.padded for e in evidence)])


def weighted_rows(x: torch.Tensor, senders: Sequence[int], verdict: Verdict) -> torch.Tensor:
    r"""One chunk index aggregated by a verdict:
    :math:`(w_0 x_0 + \sum_j w_j s_j r_j) / (w_0 + \sum_j w_j)` over the rows present
    (``x`` row 0 = own chunk, row j + 1 = ``senders[j]``'s payload); the own chunk when
    the weights present sum to 0. All weights 1 and scales 1 is the plain mean."""
    rows = [0] if verdict.own > 0.0 else []
    rows += [j + 1 for j, s in enumerate(senders) if verdict.weights.get(s, 0.0) > 0.0]
    if not rows:
        return x[0]
    weights = [verdict.own if r == 0 else verdict.weights[senders[r - 1]] for r in rows]
    if all(w == 1.0 for w in weights) and not verdict.scales:
        return mean_rows(x, rows)
    total = torch.zeros_like(x[0])
    for r, w in zip(rows, weights):
        scale = 1.0 if r == 0 else verdict.scales.get(senders[r - 1], 1.0)
        total += (w * scale) * x[r]
    return total / sum(weights)
