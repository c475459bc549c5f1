"""Backdoor by data poisoning with a pixel-pattern trigger, with optional boosting."""

from __future__ import annotations

from typing import Any

from peer.attacks import ops
from peer.attacks.base import AttackContext
from peer.attacks.registry import ATTACKS
from peer.attacks.trigger import BoostedTriggerAttack, TriggerAttack


@ATTACKS.register("backdoor")
class BackdoorAttack(BoostedTriggerAttack):
    r"""Train on batches where part of the samples carry a trigger and the target label.

    Trigger: a ``trigger_size`` x ``trigger_size`` square of raw pixel value
    ``trigger_value`` (normalised with the dataset's per-channel mean/std, set in every
    channel: white on CIFAR-10 at the default 255) at
    ``trigger_position``: a named corner (``"bottom_right"``, ``"top_left"``,
    ``"top_right"``, ``"bottom_left"``) with a 1-pixel margin to the border, or an explicit
    ``[row, col]`` of its top-left pixel. In every local batch of B samples, the first
    :math:`\lceil \text{fraction}\cdot B\rceil` samples of a permutation drawn from the
    trainer's generator are stamped and relabelled to ``target``; the rest stay clean.

    Model replacement (``boost`` > 1): each sent chunk is
    :math:`x_c^{before} + \text{boost}\,(x_c - x_c^{before})`, the boosted own update;
    boost = 1 sends the trained chunk unchanged.

    Bagdasaryan et al., "How To Backdoor Federated Learning" (AISTATS 2020) — pixel-pattern
    backdoor and model replacement; Baruch et al., "A Little Is Enough" (NeurIPS 2019)
    §4.2 for the pattern backdoor used as a benchmark.

    Attack success rate: :meth:`triggered_test_set` stamps the full trigger on every test
    sample whose label is not ``target`` and labels it ``target``.

    Everything is implemented by :class:`~peer.attacks.trigger.TriggerAttack`; its
    parameters (``target``, ``fraction``, ``trigger_size``, ``trigger_value``,
    ``trigger_position``, ``start_round``, ``interval``) and ``boost``
    (:class:`~peer.attacks.trigger.BoostedTriggerAttack`) are declared there.
    """


@ATTACKS.register("backdoor_replacement")
class BackdoorReplacementAttack(TriggerAttack):
    r"""``backdoor`` with Bagdasaryan et al.'s model replacement, the factor set per receiver.

    Bagdasaryan, Veit, Hua, Estrin & Shmatikov, "How To Backdoor Federated Learning"
    (AISTATS 2020), §3 (model replacement): the attacker submits
    :math:`\tilde X = \gamma (X - G^t) + G^t` with :math:`\gamma = n / \eta`, so that
    the server's average :math:`G^{t+1} = G^t + \frac{\eta}{n}\sum_i (L_i - G^t)` is
    replaced by the backdoored X (the benign updates roughly cancel).

    Decentralized adaptation: each receiver j averages its own model with its neighbors',
    so its "n" is :math:`\deg_j + 1` (``ctx.neighborhood.degree``, known from the
    assignment) and the chunk sent to j is

    .. math:: \tilde x_c = b_c + \gamma_j (x_c - b_c),\qquad \gamma_j = (\deg_j + 1) / \eta

    with :math:`b_c` the attacker's own chunk before training (the receiver's
    :math:`G^t` is unknown to it) and :math:`\eta` = ``eta`` (1: plain averaging). With
    chunks, fewer than :math:`\deg_j + 1` payloads are averaged per chunk index (about
    :math:`1 + \deg_j \cdot` ``per_neighbor`` / ``count``), so the factor overshoots a
    chunk-wise replacement; ``eta`` = count / per_neighbor (approximately) scales it to the
    chunk average. A receiver of unknown degree (0) gets :math:`\gamma = 1 / \eta`.
    ``backdoor`` with a fixed ``boost`` is the same with one factor for every receiver.
    Trigger parameters as ``backdoor``.
    """

    def __init__(self, *, eta: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.eta = ops.check_positive("eta", eta)

    def boost_for(self, ctx: AttackContext) -> float:
        return (ctx.neighborhood.degree + 1) / self.eta
