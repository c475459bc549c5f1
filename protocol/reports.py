"""What a ``round_done`` report must hold (docs/PROTOCOL.md, *round_done*).

The coordinator records a peer's ``metrics``, ``traffic`` and ``timing`` maps verbatim in
``rounds.jsonl``; before it does, :func:`problems` checks them against the spec, and a
report with any problem is dropped (``bad_report``, counted and logged: the peer has not
reported that round). The conformance kit (``launch/tools/conformance.py``) names the same
problems for a foreign peer.

* ``metrics``: ``chunks_received`` and ``senders`` ints >= 0; ``digest`` 16 lowercase hex
  digits; ``train_loss``, ``test_accuracy``, ``test_loss``, ``attack_success_rate``
  numbers when present; other keys free-form (a rule's own metrics).
* ``traffic``: ``sent_msgs``, ``sent_bytes``, ``recv_msgs``, ``recv_bytes``, ``dropped``
  ints >= 0; ``sent_payload_bytes`` an int >= 0 when present; ``drops_total`` a map from
  reason to int >= 0.
* ``timing``: numbers (free-form keys).
* everything JSON can record: nil, bool, int, float, str, arrays and str-keyed maps
  (msgpack also yields bytes and ext types), nested at most 32 deep.

Numbers may be non-finite: a peer whose local training diverged reports a NaN
``train_loss``. JSON has no NaN, so ``rounds.jsonl`` holds ``null`` there, and the honest
statistics leave the value out (their ``n`` counts finite values only).
"""

from __future__ import annotations

import re
from typing import Any

#: metrics every report carries
REQUIRED_COUNTS = ("chunks_received", "senders")
#: optional metrics that must be numbers when present
NUMERIC_METRICS = ("train_loss", "test_accuracy", "test_loss", "attack_success_rate")
#: traffic counters every report carries
TRAFFIC_COUNTS = ("sent_msgs", "sent_bytes", "recv_msgs", "recv_bytes", "dropped")
DIGEST = re.compile(r"[0-9a-f]{16}")  #: a model digest: 16 lowercase hex digits
MAX_DEPTH = 32  #: deepest nesting a report may have


def is_number(v: Any) -> bool:
    """An int or float that is not a bool (non-finite floats included)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_count(v: Any) -> bool:
    """An int >= 0 that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


#: the scalar types msgpack decodes that JSON records verbatim
_SCALARS = frozenset({type(None), bool, int, float, str})


def recordable(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """True if ``rounds.jsonl`` can record ``value`` verbatim: nil/bool/int/float/str and
    lists/str-keyed maps of them, nested at most ``max_depth`` deep (msgpack also yields
    bytes, ext types and bytes keys, which a peer's report must not hold).

    Exact types, as msgpack decodes them (a subclass is refused), and only containers go
    on the stack: the coordinator checks every ``round_done`` while the barrier waits
    (BENCHMARKS.md, *Where the exchange's time goes*)."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        t = type(v)
        if t is dict:
            if not all(type(k) is str for k in v):
                return False
            children: Any = v.values()
        elif t is list:
            children = v
        else:
            if t not in _SCALARS:
                return False
            continue
        if children and depth >= max_depth:
            return False
        for x in children:
            tx = type(x)
            if tx is dict or tx is list:
                stack.append((x, depth + 1))
            elif tx not in _SCALARS:
                return False
    return True


def problems(metrics: Any, traffic: Any, timing: Any) -> list[str]:
    """What is wrong with one report's maps (the rules above); [] if nothing."""
    maps = (("metrics", metrics), ("traffic", traffic), ("timing", timing))
    out = [f"{name} holds values JSON cannot record" for name, v in maps if not recordable(v)]
    if out or not all(isinstance(v, dict) for _, v in maps):
        return out or ["metrics, traffic and timing must be maps"]
    for key in REQUIRED_COUNTS:
        if not is_count(metrics.get(key)):
            out.append(f"metrics.{key} must be an int >= 0, is {metrics.get(key)!r}")
    digest = metrics.get("digest")
    if not (isinstance(digest, str) and DIGEST.fullmatch(digest)):
        out.append(f"metrics.digest must be 16 lowercase hex digits, is {digest!r}")
    for key in NUMERIC_METRICS:
        if key in metrics and not is_number(metrics[key]):
            out.append(f"metrics.{key} must be a number, is {metrics[key]!r}")
    for key in TRAFFIC_COUNTS:
        if not is_count(traffic.get(key)):
            out.append(f"traffic.{key} must be an int >= 0, is {traffic.get(key)!r}")
    if "sent_payload_bytes" in traffic and not is_count(traffic["sent_payload_bytes"]):
        out.append(f"traffic.sent_payload_bytes must be an int >= 0, is {traffic['sent_payload_bytes']!r}")
    drops = traffic.get("drops_total")
    if not (isinstance(drops, dict) and all(is_count(v) for v in drops.values())):
        out.append(f"traffic.drops_total must map reasons to ints >= 0, is {drops!r}")
    if not all(is_number(v) for v in timing.values()):
        out.append("timing values must be numbers")
    return out
