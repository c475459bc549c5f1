"""The interface every defense (aggregation rule) implements.

:class:`Defense` is the bare interface. Most robust rules subclass the template
:class:`RobustDefense` instead: its ``aggregate`` does the shared preamble once (drop
payloads holding NaN/Inf together with their senders, return the own chunk unchanged when
no payload is left, stack the own chunk and the kept payloads into a float64 matrix) and
hands the rule's policy to ``combine``, whose result it casts back with
:func:`peer.defenses.ops.to_output`. A rule then implements only::

    def combine(self, x, ctx, kept):  # x = ops.stack(own, kept.received)
        return <new flat float64 chunk>

``cdl`` subclasses :class:`Defense` directly: the baseline deliberately averages whatever
arrives, NaN/Inf included.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from peer.defenses import ops
from peer.defenses.evidence import RoundView, SenderEvidence, Verdict, gather, weighted_rows
from peer.defenses.probe import ModelProbe


@dataclass(frozen=True)
class ChunkContext:
    """What a peer knows when it aggregates one chunk index.

    ``senders`` lists who sent each received payload (same order as the payloads, sorted
    by id). ``degree`` is the peer's number of graph neighbors in the round, the peers
    that send to it (the |N_i| of per-node Byzantine bounds; it varies when the graph
    changes, docs/DEFENSES.md); ``model_size`` the length P of the whole flattened model (to scale
    whole-model thresholds to a chunk of length d_c, e.g. by sqrt(d_c / P)). ``own_before``
    is the own chunk at the start of the round, before local training, so that
    ``own - own_before`` is the own update and ``received[j] - own_before`` a neighbor's
    update relative to this peer. ``loss_with`` evaluates the peer's own model with a
    payload substituted for its own chunk ``index`` on a fixed batch of local data: the hook
    loss-based defenses use (chunk-level adaptation of Sentinel, UBAR, Zeno and
    loss-threshold filtering).
    ``sample_loss_with`` is the same on the mini-batch the peer trained on last this round
    (the "current iteration's sample" xi_k,i of UBAR, Guo et al. 2022, Definition 3);
    None where the driver has none (then rules fall back to ``loss_with``).
    """

    node: int
    round: int
    index: int
    senders: tuple[int, ...]
    degree: int = 0
    model_size: int = 0
    own_before: torch.Tensor | None = None
    loss_with: Callable[[torch.Tensor], float] | None = None
    sample_loss_with: Callable[[torch.Tensor], float] | None = None
    #: the own model with a payload substituted, for rules that differentiate through it
    #: (DFL-Dual's model inversion); None where no model is at hand (unit tests)
    probe: ModelProbe | None = None


class Defense(ABC):
    """Combines a peer's own chunk with the payloads it received for that chunk index.

    ``aggregate`` must return a new tensor and never modify its inputs; with no received
    payload it must return the own chunk unchanged (a copy is fine).
    """

    name: ClassVar[str]

    def begin_round(
        self,
        round_: int,
        own: torch.Tensor,
        received: dict[int, dict[int, torch.Tensor]],
        bounds: list[tuple[int, int]],
    ) -> None:
        """Called once per round before the per-index ``aggregate`` calls, with the whole
        own vector and every payload received this round (``{sender: {index: chunk}}``);
        rules that pool statistics across chunk indices (e.g. adaptive clipping) use it."""

    def judge_round(self, view: RoundView) -> None:
        """Called once per round after :meth:`begin_round`, before the per-index
        ``aggregate`` calls, with the whole round (:class:`peer.defenses.evidence.RoundView`);
        rules with ``granularity = "neighbor"`` decide there whom to trust."""

    def set_epoch_length(self, rounds: float) -> None:
        """Called once before round 1 with the number of rounds one pass over the local
        shard takes (``floor(samples / batch_size) / local_steps``); rules that count
        epochs (loss-threshold's patience) override it."""

    def observe_evaluation(self, round_: int, accuracy: float, loss: float) -> None:
        """Called after each evaluation of the peer's own model (test accuracy and loss);
        rules that adapt over time (e.g. loss-threshold filtering) override it."""

    def round_metrics(self) -> dict[str, Any]:
        """Extra values for this round's metrics of the peer (e.g. loss-threshold
        filtering's threshold), read once after the round's aggregation; default none."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything this rule carries from round to round, for a checkpoint
        (``peer/checkpoint.py``); default: a copy of its attributes. A rule whose state
        cannot be pickled overrides this and :meth:`load_state_dict`."""
        return dict(vars(self))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (the constructor already ran)."""
        vars(self).update(state)

    @abstractmethod
    def aggregate(self, own: torch.Tensor, received: Sequence[torch.Tensor], ctx: ChunkContext) -> torch.Tensor:
        """New value of the chunk from the own chunk and the received payloads."""


@dataclass(frozen=True)
class Kept:
    """The inputs :class:`RobustDefense` keeps, as they were given (dtype and shape).

    ``received`` are the payloads holding no NaN/Inf (at least one), in the order received;
    ``senders`` their senders, aligned (positions stand in for ids missing from
    ``ctx.senders``). Row j + 1 of the stack is ``received[j]`` flattened to float64 and
    row 0 is ``own``; hand ``own`` and ``received[j]`` themselves, not rows of the stack,
    to ``ctx.loss_with``.
    """

    own: torch.Tensor
    received: tuple[torch.Tensor, ...]
    senders: tuple[int, ...]

    @property
    def m(self) -> int:
        """Number of payloads kept."""
        return len(self.received)


class RobustDefense(Defense):
    """Template for rules that work on the finite payloads only (every rule but ``cdl``).

    ``aggregate`` drops the payloads holding NaN or +-Inf with their senders
    (:func:`peer.defenses.ops.finite_only`), returns the own chunk unchanged
    (:func:`peer.defenses.ops.unchanged`) when none is left, else builds the stack
    ``x = ops.stack(own, kept)`` (row 0 the own chunk, rows 1..m the kept payloads, float64)
    and returns :func:`peer.defenses.ops.to_output` of :meth:`combine`'s vector: a new
    float32 tensor of the own chunk's shape. Subclasses implement :meth:`combine` only.

    Two generic options (keyword parameters of every rule that passes them to
    ``RobustDefense.__init__``; the class attributes are the defaults):

    * ``own_candidate`` (default True): whether the own chunk is one of the candidates a
      selection rule (Krum, median, trimmed mean, Bulyan) chooses among. Rules read their
      candidates with :meth:`candidates`; False gives the decentralized baselines of Guo et
      al. (Guo et al. 2022, Sec. VI-A: candidates are the neighbors' estimates
      x_j, j in N_i).
    * ``guf_alpha`` (default None: the rule's result is the new chunk): the General Update
      Function mixing of Guo et al. 2022, Eq. (2),
      ``x <- alpha * own + (1 - alpha) * R`` with R the rule's result; Guo et al. 2022 sets alpha = 0.5
      for every rule (Sec. VI-A, "For all these defenses, we set alpha to be 0.5").

    A rule that decides whom to trust may also offer ``granularity = "neighbor"`` (it lists
    it in ``granularities``; :mod:`peer.defenses.evidence`): :meth:`judge` scores each
    sender once per round from all its chunks, and :meth:`combine_judged` then
    aggregates every chunk index by that :class:`~peer.defenses.evidence.Verdict`. A
    ``judge`` that cannot decide (e.g. too few candidates) returns None: each chunk
    index then falls back to :meth:`combine`.
    """

    own_candidate: bool = True
    guf_alpha: float | None = None
    #: the granularities of evidence this rule offers; ``granularity`` is the one chosen
    granularities: ClassVar[tuple[str, ...]] = ("chunk",)
    granularity: str = "chunk"
    _verdict: Verdict | None = None

    def __init__(
        self,
        *,
        own_candidate: bool | None = None,
        guf_alpha: float | None = None,
        granularity: str | None = None,
    ) -> None:
        self.set_granularity(granularity)
        if own_candidate is not None:
            if not isinstance(own_candidate, bool):
                raise ValueError(f"own_candidate={own_candidate!r} must be true or false")
            self.own_candidate = own_candidate
        if guf_alpha is not None:
            self.guf_alpha = ops.check_range("guf_alpha", guf_alpha, 0.0, 1.0, lo_open=False, hi_open=False)

    def set_granularity(self, granularity: str | None) -> None:
        """Choose the granularity of evidence (None keeps the default, "chunk")."""
        if granularity is not None:
            self.granularity = ops.check_choice("granularity", granularity, self.granularities)

    def candidates(self, x: torch.Tensor) -> torch.Tensor:
        """The rows a selection rule chooses among: the whole stack (own chunk first) with
        ``own_candidate``, else the received payloads only (rows 1..m)."""
        return x if self.own_candidate else x[1:]

    #: pre-aggregation steps run on the stack before :meth:`combine` (``defense.pre``,
    #: attached by :func:`peer.defenses.compose.attach_pre`)
    pre: tuple[PreStep, ...] = ()
    #: which pre-step output :meth:`combine` can take: "none", "rows" (row i still stands
    #: for input i, row 0 for the own chunk) or "any" (also fewer, pooled rows)
    accepts_pre: ClassVar[str] = "none"

    def aggregate(self, own: torch.Tensor, received: Sequence[torch.Tensor], ctx: ChunkContext) -> torch.Tensor:
        finite, senders = ops.finite_only(received, ctx.senders)
        if not finite:
            return ops.unchanged(own)
        x = ops.stack(own, finite)
        own_row = x[0]  # the own chunk, before any pre step mixes or pools the rows
        for step in self.pre:
            x = step.apply(x, ctx)
        kept = Kept(own, tuple(finite), senders)
        if self.granularity == "neighbor" and self._verdict is not None:
            result = self.combine_judged(x, ctx, kept, self._verdict)
        else:
            result = self.combine(x, ctx, kept)
        if self.guf_alpha is not None:
            result = self.guf_alpha * own_row + (1.0 - self.guf_alpha) * result
        return ops.to_output(result, own)

    @abstractmethod
    def combine(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept) -> torch.Tensor:
        """The new chunk (or, with ``guf_alpha``, the rule's R) as a flat float64 vector of
        length ``x.shape[1]``.

        ``x`` is the ``(1 + m, d)`` float64 stack (own chunk first, then the kept payloads
        in sender order), ``m >= 1``; ``kept`` the same inputs as given, with their senders.
        The result is copied, so a row of ``x`` may be returned as it is (``x[0]`` keeps
        the own chunk).
        """

    def judge_round(self, view: RoundView) -> None:
        if self.granularity == "neighbor":
            self._verdict = self.judge(gather(view), view)

    def judge(self, evidence: list[SenderEvidence], view: RoundView) -> Verdict | None:
        """The round's neighbor-level decision from each sender's evidence (only rules
        that offer ``granularity = "neighbor"`` override it)."""
        raise NotImplementedError(f"{type(self).__name__} offers no neighbor-level evidence")

    def combine_judged(self, x: torch.Tensor, ctx: ChunkContext, kept: Kept, verdict: Verdict) -> torch.Tensor:
        """One chunk index aggregated by the round's verdict (same stack as
        :meth:`combine`); default :func:`peer.defenses.evidence.weighted_rows`."""
        return weighted_rows(x, kept.senders, verdict)


class PreStep(ABC):
    """A pre-aggregation step (``defense.pre``): a new stack from the stack, run by
    :class:`RobustDefense` before its rule. ``keeps_rows`` is True when row i of the
    output stands for row i of the input (row 0 for the own chunk), False when rows are
    pooled (fewer rows, none of them the own chunk's)."""

    name: ClassVar[str]
    keeps_rows: ClassVar[bool] = True

    @abstractmethod
    def apply(self, x: torch.Tensor, ctx: ChunkContext) -> torch.Tensor:
        """The new ``(n', d)`` float64 stack; never modifies ``x``."""
