"""``granularity = "chunk" | "neighbor"`` (peer/defenses/evidence.py), in-process: each
case is small vectors whose outcome differs between the two granularities, derived by
hand in the comments. A round is driven as the node core drives it: ``begin_round``,
``judge_round`` with the whole round, then ``aggregate`` per chunk index."""

from __future__ import annotations

import pytest
import torch

from peer.defenses import ChunkContext, Defense, RoundView, build_defense
from peer.registry import RegistryError

#: two chunks of two coordinates
BOUNDS = [(0, 2), (2, 4)]


def _t(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def _round(
    defense: Defense,
    own: torch.Tensor,
    received: dict[int, dict[int, torch.Tensor]],
    *,
    before: torch.Tensor | None = None,
    round_: int = 1,
    bounds: list[tuple[int, int]] = BOUNDS,
) -> list[float]:
    """The new own vector after one round (as ``NodeCore.end_round`` computes it)."""
    defense.begin_round(round_, own, received, bounds)
    defense.judge_round(
        RoundView(
            node=0, round=round_, degree=len(received), own=own, own_before=before, received=received, bounds=bounds
        )
    )
    new = own.clone()
    for c, (lo, hi) in enumerate(bounds):
        senders = tuple(s for s in sorted(received) if c in received[s])
        if not senders:
            continue
        ctx = ChunkContext(
            node=0,
            round=round_,
            index=c,
            senders=senders,
            degree=len(received),
            model_size=own.numel(),
            own_before=before[lo:hi] if before is not None else None,
        )
        new[lo:hi] = defense.aggregate(own[lo:hi], [received[s][c] for s in senders], ctx)
    return [round(v, 6) for v in new.tolist()]


def _both(name: str, params: dict, *args: object, **kwargs: object) -> tuple[list[float], list[float]]:
    chunk = _round(build_defense(name, {**params, "granularity": "chunk"}), *args, **kwargs)  # type: ignore[arg-type]
    neighbor = _round(build_defense(name, {**params, "granularity": "neighbor"}), *args, **kwargs)  # type: ignore[arg-type]
    return chunk, neighbor


def test_krum_picks_one_sender_for_the_whole_round() -> None:
    # first coordinates (chunk 0 | chunk 1): own 0 | 0, s1 1 | 10, s2 2 | 1, s3 10 | 2;
    # f = 0, n = 4, k = n - 2 = 2.
    # chunk 0, candidates 0, 1, 2, 10: scores own 1+4, s1 1+1, s2 1+4, s3 64+81 -> s1 (1)
    # chunk 1, candidates 0, 10, 1, 2: scores own 1+4, s1 64+81, s2 1+1, s3 1+4 -> s2 (1)
    # neighbor: own (0,0), s1 (1,10), s2 (2,1), s3 (10,2); squared distances own-s1 101,
    # own-s2 5, own-s3 104, s1-s2 82, s1-s3 145, s2-s3 65; scores own 5+101, s1 82+101,
    # s2 5+65, s3 65+104 -> s2 for both chunks: (2, 0 | 1, 0)
    own = torch.zeros(4)
    received = {1: {0: _t(1, 0), 1: _t(10, 0)}, 2: {0: _t(2, 0), 1: _t(1, 0)}, 3: {0: _t(10, 0), 1: _t(2, 0)}}

    chunk, neighbor = _both("krum", {"f": 0}, own, received)

    assert chunk == [1.0, 0.0, 1.0, 0.0]
    assert neighbor == [2.0, 0.0, 1.0, 0.0]


def test_krum_keeps_the_own_chunk_where_the_chosen_sender_sent_nothing() -> None:
    # s1 sends chunk 0 = (1, 0) only, s2 both chunks (3, 0 | 4, 0), s3 chunk 1 = (10, 0) only.
    # chunk 0: own 0, s1 1, s2 3, k = 1: scores own 1, s1 1, s2 4 -> own (tie, own first);
    # chunk 1: own 0, s2 4, s3 10: scores 16, 16, 36 -> own: (0, 0 | 0, 0).
    # neighbor: own (0,0), s1 (1,0), s2 (3,4), s3 (0,10) (the own values where a sender sent
    # nothing); squared distances own-s1 1, own-s2 25, own-s3 100, s1-s2 20, s1-s3 101,
    # s2-s3 45; k = 2: scores own 26, s1 21, s2 45, s3 145 -> s1: chunk 0 from s1, chunk 1
    # (s1 sent none) the own: (1, 0 | 0, 0)
    own = torch.zeros(4)
    received = {1: {0: _t(1, 0)}, 2: {0: _t(3, 0), 1: _t(4, 0)}, 3: {1: _t(10, 0)}}

    chunk, neighbor = _both("krum", {"f": 0}, own, received)

    assert chunk == [0.0, 0.0, 0.0, 0.0]
    assert neighbor == [1.0, 0.0, 0.0, 0.0]


def test_fltrust_scores_a_sender_on_all_its_chunks() -> None:
    # before 0, own update g0 = (1, 0 | 1, 0); the sender's update (3, 4 | -3, 4).
    # chunk 0: cos = 3/5 -> TS 0.6, scaled (3, 4) * 1/5; (1, 0) + 0.6 (0.6, 0.8) = (1.36, 0.48),
    # / 1.6 = (0.85, 0.3); chunk 1: cos = -0.6 -> TS 0 -> own (1, 0).
    # neighbor: cos((1,0,1,0), (3,4,-3,4)) = 0 -> TS 0 -> the own vector everywhere
    own, before = _t(1, 0, 1, 0), torch.zeros(4)
    received = {1: {0: _t(3, 4), 1: _t(-3, 4)}}

    chunk, neighbor = _both("fltrust", {}, own, received, before=before)

    assert chunk == [0.85, 0.3, 1.0, 0.0]
    assert neighbor == [1.0, 0.0, 1.0, 0.0]


def test_ubar_shortlists_by_the_whole_round_distance() -> None:
    # rho = 0.5, alpha = 0.5, no loss hook (stage 1 only); own 0.
    # chunk-level, m = 2, one shortlisted: chunk 0 A (1) nearer than B (2) -> 0.5 * 1;
    # chunk 1 B (2) nearer than A (5) -> 0.5 * 2: (0.5, 0 | 1, 0).
    # neighbor: squared distances A 1 + 25, B 4 + 4 -> B: (1, 0 | 1, 0)
    own = torch.zeros(4)
    received = {1: {0: _t(1, 0), 1: _t(5, 0)}, 2: {0: _t(2, 0), 1: _t(2, 0)}}

    chunk, neighbor = _both("ubar", {"rho": 0.5}, own, received)

    assert chunk == [0.5, 0.0, 1.0, 0.0]
    assert neighbor == [1.0, 0.0, 1.0, 0.0]


def test_sentinel_filters_a_sender_by_the_cosine_of_all_its_chunks() -> None:
    # cos_threshold 0.5, no loss hook (weights 1); own (1, 0 | 1, 0), A (0.5, 0 | 0, 0.25).
    # chunk 0: cos 1, norm 0.5 <= 1 -> ((1, 0) + (0.5, 0)) / 2 = (0.75, 0);
    # chunk 1: cos 0 < 0.5 -> own (1, 0).
    # neighbor: cos((1,0,1,0), (0.5,0,0,0.25)) = 0.5 / (sqrt(0.3125) sqrt(2)) = 0.632 -> kept,
    # norm 0.559 <= sqrt(2) -> scale 1: chunk 0 (0.75, 0), chunk 1 ((1, 0) + (0, 0.25)) / 2
    own = _t(1, 0, 1, 0)
    received = {1: {0: _t(0.5, 0), 1: _t(0, 0.25)}}

    chunk, neighbor = _both("sentinel", {}, own, received)

    assert chunk == [0.75, 0.0, 1.0, 0.0]
    assert neighbor == [0.75, 0.0, 0.5, 0.125]


def test_dfl_dual_clusters_the_senders_once_per_round() -> None:
    # model domain only (inversion_steps = 0, alpha = 1: D = Euclidean distance); own (1, 0 | 1, 0),
    # A (2, 0 | -1, 0), B (0, 1 | 2, 0).
    # chunk 0: own (1,0), A (2,0) trust 1, B (0,1) trust 0; D_0A 1, D_0B sqrt2, D_AB sqrt5.
    #   j=0: {A} | {B}, trust 1 > 0 -> {A}, q_0 = 1; j=A: {0} | {B} -> {0}, q_A = 1;
    #   j=B: {0} | {A}, trust 1 = 1 -> the high group {A}, q_B = sqrt5;
    #   r = (1, 1, 2.236): {0, A} | {B}, trust 1 > 0 -> mean(own, A) = (1.5, 0).
    # chunk 1: own (1,0), A (-1,0) trust -1, B (2,0) trust 1; D_0A 2, D_0B 1, D_AB 3.
    #   j=0: {B} | {A} -> {B}, q_0 = 1; j=A: {0} | {B}, tie -> {B}, q_A = 3; j=B: {0}, q_B = 1;
    #   r = (1, 3, 1): {0, B} | {A} -> mean(own, B) = (1.5, 0).
    # neighbor: own (1,0,1,0), A (2,0,-1,0), B (0,1,2,0); trust A 1/sqrt10 = 0.316,
    #   B 2/sqrt10 = 0.632; D_0A sqrt5, D_0B sqrt3, D_AB sqrt14.
    #   j=0: {B} | {A}, 0.632 > 0.316 -> {B}, q_0 = sqrt3; j=A: {0} -> q_A = sqrt5;
    #   j=B: {0} -> q_B = sqrt3; r = (1, 1.291, 1): {0, B} | {A}, 0.816 > 0.316 -> {own, B}:
    #   chunk 0 mean((1,0), (0,1)) = (0.5, 0.5), chunk 1 mean((1,0), (2,0)) = (1.5, 0)
    own = _t(1, 0, 1, 0)
    received = {1: {0: _t(2, 0), 1: _t(-1, 0)}, 2: {0: _t(0, 1), 1: _t(2, 0)}}

    chunk, neighbor = _both("dfl_dual", {"inversion_steps": 0}, own, received, before=torch.zeros(4))

    assert chunk == [1.5, 0.0, 1.5, 0.0]
    assert neighbor == [0.5, 0.5, 1.5, 0.0]


def test_dfl_detector_scores_a_sender_once_per_round_from_all_its_chunks() -> None:
    # one coordinate per chunk; own and before 0 in both rounds, so no curvature is learnt
    # and a sender's predicted update is its update of round 1. Round 1: A (1 | 1), B (1 | 1).
    # Round 2: A (4 | 1), B (1 | 5): per chunk distances A 3 | 0, B 0 | 4.
    # chunk-level: chunk 0 normalises 3, 0 -> A 1, B 0; chunk 1: 0, 4 -> A 0, B 1.
    # neighbor: A sqrt(9) = 3, B sqrt(16) = 4, normalised by 7 -> A 3/7, B 4/7
    bounds = [(0, 1), (1, 2)]
    rounds = [{1: {0: _t(1), 1: _t(1)}, 2: {0: _t(1), 1: _t(1)}}, {1: {0: _t(4), 1: _t(1)}, 2: {0: _t(1), 1: _t(5)}}]
    scores = {}
    for granularity in ("chunk", "neighbor"):
        rule = build_defense("dfl_detector", {"granularity": granularity})
        for t, received in enumerate(rounds, start=1):
            _round(rule, torch.zeros(2), received, before=torch.zeros(2), round_=t, bounds=bounds)
        scores[granularity] = {s: list(v) for s, v in rule.scores.items()}  # type: ignore[attr-defined]

    assert scores["chunk"] == {1: [1.0, 0.0], 2: [0.0, 1.0]}
    assert scores["neighbor"] == {1: [3 / 7], 2: [4 / 7]}


def test_ios_drops_the_sender_farthest_over_the_whole_round() -> None:
    # f = 1, own 0; first coordinates (chunk 0 | chunk 1): A 3 | 0, B 0 | 2, C 1 | 1.
    # chunk 0: mean of 0, 3, 0, 1 = 1; squared distances A 4, B 1, C 0 -> A dropped,
    # (0 + 0 + 1) / 3; chunk 1: mean of 0, 0, 2, 1 = 0.75; A 0.5625, B 1.5625, C 0.0625 ->
    # B dropped, (0 + 0 + 1) / 3.
    # neighbor: vectors A (3, 0 | 0, 0), B (0, 0 | 2, 0), C (1, 0 | 1, 0), mean (1, 0 | 0.75, 0);
    # squared distances A 4 + 0.5625, B 1 + 1.5625, C 0.0625 -> A dropped for both chunks:
    # chunk 0 (0 + 0 + 1) / 3, chunk 1 (0 + 2 + 1) / 3 = 1
    own = torch.zeros(4)
    received = {1: {0: _t(3, 0), 1: _t(0, 0)}, 2: {0: _t(0, 0), 1: _t(2, 0)}, 3: {0: _t(1, 0), 1: _t(1, 0)}}

    chunk, neighbor = _both("ios", {"f": 1}, own, received)

    third = round(1 / 3, 6)
    assert chunk == [third, 0.0, third, 0.0]
    assert neighbor == [third, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("name", ["bridge_m", "bulyan", "median"])
def test_rules_without_a_sender_decision_refuse_neighbor_granularity(name: str) -> None:
    with pytest.raises(RegistryError, match="granularity"):
        build_defense(name, {"granularity": "neighbor"})
