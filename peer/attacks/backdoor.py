"""Backdoor by data poisoning with a pixel-pattern trigger, with optional boosting."""

from __future__ import annotations

from peer.attacks.registry import ATTACKS
from peer.attacks.trigger import BoostedTriggerAttack


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
