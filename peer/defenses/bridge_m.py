"""BridgeM: BRIDGE with the coordinate-wise median screen (DFL-Dual's baseline)."""

from __future__ import annotations

from peer.defenses.median import CoordinateMedian
from peer.defenses.registry import DEFENSES


@DEFENSES.register("bridge_m")
class BridgeM(CoordinateMedian):
    r"""BRIDGE-M: screen the own and the neighbors' values by the coordinate-wise median.

    Yang & Bajwa, "ByRDiE / BRIDGE: Byzantine-resilient Decentralized Gradient Descent"
    (IEEE TSIPN 2022), the median variant; DFL-Dual's baseline "BridgeM" ([8] in
    Sun et al. 2024, §5.1). BRIDGE screens the received
    models and then takes a local gradient step; byzemu peers train first and aggregate
    after (adapt-then-combine), so the screen is the rule itself:
    :math:`[x_c]_k \leftarrow \operatorname{median}\{[x_c]_k, [r_1]_k, \dots, [r_m]_k\}`.
    The result is that of ``median`` (registered under DFL-Dual's name so that its sweep
    reads as the paper's table); fallbacks and chunk adaptation as ``median``.
    """

    accepts_pre = "any"
