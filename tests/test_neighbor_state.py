"""Per-neighbor state across graph changes (docs/DEFENSES.md, *Neighbors that come and
go*): what a stateful rule does when a sender leaves for some rounds and returns, and
that a rule without per-neighbor state treats a returning sender like any other. Expected
values derived by hand in the comments."""

from __future__ import annotations

import math

import pytest
import torch

from peer.defenses import ChunkContext, build_defense
from peer.defenses.dfl_detector import DFLDetector


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _ctx(senders: tuple[int, ...], round_: int, **kw) -> ChunkContext:
    return ChunkContext(node=0, round=round_, index=0, senders=senders, degree=len(senders), **kw)


#: own [2,0] loss 0.5; sender 1's [1,0] loss 0.5; sender 2's [1.5,0] loss 1.0, [1.75,0] loss 0.5
LOSS: dict[tuple[float, ...], float] = {(2.0, 0.0): 0.5, (1.0, 0.0): 0.5, (1.5, 0.0): 1.0, (1.75, 0.0): 0.5}


def _loss(t: torch.Tensor) -> float:
    return LOSS[tuple(float(v) for v in t.tolist())]


def test_sentinel_freezes_a_leaving_senders_history_and_resumes_it_on_return() -> None:
    d = build_defense("sentinel", {})
    d.aggregate(_t(2, 0), [_t(1, 0), _t(1.5, 0)], _ctx((1, 2), 1, loss_with=_loss))  # 2's mean: 1.0
    # round 2: sender 2 is not a neighbor; only 1 (weight 1): (2 + 1) / 2
    alone = d.aggregate(_t(2, 0), [_t(1, 0)], _ctx((1,), 2, loss_with=_loss))
    # round 3: 2 returns with loss 0.5; its mean continues from round 1: (1.0 + 0.5) / 2 = 0.75,
    # excess over the own mean 0.5 is 0.25, k = 1 / 0.5 -> w2 = exp(-0.5)
    back = d.aggregate(_t(2, 0), [_t(1, 0), _t(1.75, 0)], _ctx((1, 2), 3, loss_with=_loss))

    w2 = math.exp(-0.5)
    assert alone.tolist() == [1.5, 0.0]
    assert back.tolist() == pytest.approx([(2 + 1 + 1.75 * w2) / (2 + w2), 0.0])


def test_sentinel_weights_a_newcomer_by_its_own_losses_only() -> None:
    d = build_defense("sentinel", {})
    d.aggregate(_t(2, 0), [_t(1.5, 0)], _ctx((2,), 1, loss_with=_loss))  # sender 2's mean: 1.0
    # sender 7 arrives in round 2 with [1.75,0] (loss 0.5): no history, mean 0.5 = own -> weight 1
    out = d.aggregate(_t(2, 0), [_t(1.75, 0)], _ctx((7,), 2, loss_with=_loss))

    assert out.tolist() == [(2 + 1.75) / 2, 0.0]


def test_dfl_detector_keeps_a_flagged_sender_out_when_it_returns() -> None:
    d = DFLDetector(warmup=0)
    d.flagged = {2}
    # round 5, sender 2 back after rounds away: still ignored -> mean of own 0 and sender 1's 3
    out = d.aggregate(_t(0.0), [_t(3.0), _t(100.0)], _ctx((1, 2), 5, own_before=_t(0.0)))

    assert out.tolist() == [1.5]


def test_dfl_detector_predicts_a_returning_sender_over_the_whole_gap() -> None:
    d = DFLDetector(warmup=100)  # no detection: only the bookkeeping
    d.aggregate(_t(1.0), [_t(1.0), _t(1.0)], _ctx((1, 2), 1, own_before=_t(0.0)))
    d.aggregate(_t(2.0), [_t(2.0)], _ctx((1,), 2, own_before=_t(1.0)))  # 2 away in round 2
    frozen = d._last[(2, 0)]

    d.aggregate(_t(3.0), [_t(3.0), _t(3.0)], _ctx((1, 2), 3, own_before=_t(2.0)))

    # while away, 2's last update stays the one of round 1 (b = 0, g = 1 - 0); on return the
    # prediction starts from it (the gap b_3 - b_1 = 2) and round 3's replaces it
    assert (frozen[0], frozen[1].tolist(), frozen[2].tolist()) == (1, [0.0], [1.0])
    assert d._last[(2, 0)][0] == 3 and d._last[(1, 0)][0] == 3


@pytest.mark.parametrize("name", ["loss_threshold", "ubar"])
def test_a_rule_without_per_neighbor_state_treats_a_returning_sender_like_a_new_one(name: str) -> None:
    returning, newcomer = build_defense(name, {}), build_defense(name, {})
    returning.aggregate(_t(2, 0), [_t(1.5, 0)], _ctx((2,), 1, loss_with=_loss))
    newcomer.aggregate(_t(2, 0), [_t(1.5, 0)], _ctx((3,), 1, loss_with=_loss))

    # round 3: sender 2 returns after a round away; the other peer sees sender 2 for the first time
    a = returning.aggregate(_t(2, 0), [_t(1, 0), _t(1.75, 0)], _ctx((1, 2), 3, loss_with=_loss))
    b = newcomer.aggregate(_t(2, 0), [_t(1, 0), _t(1.75, 0)], _ctx((1, 2), 3, loss_with=_loss))

    assert a.tolist() == b.tolist()
