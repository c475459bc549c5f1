"""Diagnostic probe of DFL-Dual's own setting: what the rules keep, round by round.

In-process, the reference driver's :class:`~launch.run.reference.MemoryNetwork` over the
node cores of ``configs/papers/dfl_dual_paper.toml`` (10 peers, 6 Byzantine placed
``honest_connected``, MNIST + logistic regression, 7 of 8 chunks), a few rounds; the
cores run unchanged, the probe only reads what they decide. Diagnostics, not results:
one seed, a few rounds, evaluation on the first 2,000 test images.

``krum`` (attack ``krum_attack``): per round, the honest mean accuracy, the spread of
the honest models (mean distance to their mean), the distance of the Byzantine models to
it, the Krum attack's lambda per crafted chunk (median, max), and for a neighbor-evidence
rule (``dfl_dual``, granularity "neighbor") how many Byzantine and honest senders each
honest peer kept and, for DFL-Dual, the mean model-domain (E) and data-domain (W)
distance between an honest peer's own model and its honest / Byzantine senders; the
numbers of benign chunks the attack knew when crafting, and the mean distance between
two Byzantine senders' payloads to one receiver (on the chunks both sent).

``scaling`` (attack ``backdoor`` with boost 10, LeNet, as Table 2's Scaling column in
``configs/sweeps/dfl_dual_paper_scaling_core.toml``; DFL-Dual with neighbor evidence): the
same rows as ``krum`` (no lambda) and the honest peers' mean attack success rate.

With DFL-Dual (neighbor evidence) each row also gives, per honest peer, its candidates
(own, then B = Byzantine / H = honest senders), their distance D to the own model (Eq. 7),
their trust S_0k (Eq. 8) and the candidates of the selected group N*.

``detector`` (attack ``label_flip``, defense ``dfl_detector``): per round, each honest
peer's accuracy, the senders it has flagged and every sender's suspicious score
(B = Byzantine, H = honest).

    .venv/bin/python bench/dfl_dual_probe.py krum --rounds 30 [--set KEY=VALUE ...]
    .venv/bin/python bench/dfl_dual_probe.py scaling --rounds 12
    .venv/bin/python bench/dfl_dual_probe.py detector --rounds 25 --set defense.params.granularity=\\"neighbor\\"
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

CONFIG = "configs/papers/dfl_dual_paper.toml"
BASE: dict[str, dict[str, Any]] = {
    "krum": {"byzantine.attack": "krum_attack", "defense.params.granularity": "neighbor"},
    "scaling": {
        "byzantine.attack": "backdoor",
        "byzantine.params.boost": 10.0,
        "model.name": "lenet",
        "defense.params.granularity": "neighbor",
    },
    "detector": {"byzantine.attack": "label_flip", "defense.name": "dfl_detector"},
}


def network(mode: str, rounds: int, sets: list[str]) -> tuple[Any, Any, list[Any]]:
    import torch

    from coordinator.plan import build_plan
    from launch.api import load_config
    from launch.run.reference import MemoryNetwork
    from peer import data
    from peer.core import NodeCore
    from peer.data import test_subset

    cfg = load_config(CONFIG, {**BASE[mode], "rounds": rounds, "eval.every": 1}, *sets)
    torch.set_num_threads(1)
    plan = build_plan(cfg)
    d = cfg.data
    root = Path(d.root) if d.root else None
    train = data.load(d.dataset, root, train=True, seed=cfg.seed)
    test = test_subset(data.load(d.dataset, root, train=False, seed=cfg.seed), 2000)
    cores = [NodeCore(plan.assignment(i), train_data=train, test_set=test) for i in range(cfg.nodes)]
    return plan, MemoryNetwork(cores, plan.rounds), cores


def probe_selection(
    mode: str, rounds: int, sets: list[str], save: Callable[[list[dict[str, Any]]], None]
) -> list[dict[str, Any]]:
    """Rows of the ``krum`` and ``scaling`` modes (module docstring)."""
    plan, net, cores = network(mode, rounds, sets)
    byz = set(plan.byzantine)
    stash: list[Any] = []  # the W matrix of the last judge call
    selects: list[Any] = []  # DFL-Dual's select call of the last judge call: ((D, trust), selected group)
    peers: dict[int, dict[str, Any]] = {}  # per honest peer: candidates, D to the own model, trust, kept
    seen: dict[str, list[float]] = {"lam": [], "kept_byz": [], "kept_hon": []}
    for key in ("e_honest", "e_byzantine", "w_honest", "w_byzantine", "benign_known", "byzantine_pairs"):
        seen[key] = []
    for core in cores:
        if core.attack is not None and hasattr(core.attack, "search_lambda"):
            search = core.attack.search_lambda

            def traced_search(*args: Any, _search: Any = search) -> float:
                lam = float(_search(*args))
                seen["lam"].append(lam)
                seen["benign_known"].append(args[0].shape[0])
                return lam

            core.attack.search_lambda = traced_search
        elif core.attack is None and getattr(core.defense, "granularity", "chunk") == "neighbor":
            judge = core.defense.judge

            if hasattr(core.defense, "data_distances"):
                core.defense.data_distances = _stash(core.defense.data_distances, stash)
            if hasattr(core.defense, "select"):
                core.defense.select = _stash(core.defense.select, selects, with_args=True)

            def traced_judge(evidence: Any, view: Any, _judge: Any = judge, _node: int = core.node) -> Any:
                stash.clear()
                selects.clear()
                verdict = _judge(evidence, view)
                if verdict is not None:
                    seen["kept_byz"].append(sum(s in byz for s in verdict.trusted()))
                    seen["kept_hon"].append(sum(s not in byz for s in verdict.trusted()))
                if selects:
                    (d, trust), kept = selects[-1]
                    names = ["own"] + [f"{'B' if e.sender in byz else 'H'}{e.sender}" for e in evidence]
                    peers[_node] = {
                        "candidates": names,
                        "d_own": [round(float(x), 3) for x in d[0]],
                        "trust": [round(float(t), 4) for t in trust],
                        "kept": [names[k] for k in kept],
                    }
                seen["byzantine_pairs"].extend(_pair_distances(view.received, byz))
                own = view.own.double()
                for k, e in enumerate(evidence, start=1):
                    side = "byzantine" if e.sender in byz else "honest"
                    seen[f"e_{side}"].append(float((e.padded - own).norm()))
                    if stash and stash[0] is not None:
                        seen[f"w_{side}"].append(float(stash[0][0, k]))
                return verdict

            core.defense.judge = traced_judge
    out = []
    for r in range(1, rounds + 1):
        for v in seen.values():
            v.clear()
        peers.clear()
        res = net.run_round(r)
        honest = np.stack([c.vector_before for c in cores if c.node not in byz])
        byzantine = np.stack([c.vector_before for c in cores if c.node in byz])
        centre = honest.mean(axis=0)
        row: dict[str, Any] = {
            "round": r,
            "acc": float(np.mean([res[c.node].metrics["test_accuracy"] for c in cores if c.node not in byz])),
            "asr": _mean([res[c.node].metrics.get("attack_success_rate") for c in cores if c.node not in byz]),
            "honest_spread": float(np.linalg.norm(honest - centre, axis=1).mean()),
            "byzantine_to_honest": float(np.linalg.norm(byzantine - centre, axis=1).mean()),
            "lambda_median": float(np.median(seen["lam"])) if seen["lam"] else None,
            "lambda_max": max(seen["lam"], default=None),
            "benign_known": sorted(set(seen["benign_known"])),
            "byzantine_pair_distance": float(np.mean(seen["byzantine_pairs"])) if seen["byzantine_pairs"] else None,
            "kept_byzantine": float(np.mean(seen["kept_byz"])) if seen["kept_byz"] else None,
            "kept_honest": float(np.mean(seen["kept_hon"])) if seen["kept_hon"] else None,
            **{
                key: float(np.mean(seen[key])) if seen[key] else None
                for key in ("e_honest", "e_byzantine", "w_honest", "w_byzantine")
            },
        }
        if peers:  # DFL-Dual: what each honest peer saw and kept (B = Byzantine, H = honest sender)
            row["peers"] = {str(n): peers[n] for n in sorted(peers)}
        print(json.dumps(row), flush=True)
        out.append(row)
        save(out)
    return out


def _mean(values: list[Any]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _pair_distances(received: dict[int, dict[int, Any]], byz: set[int]) -> list[float]:
    """The distance between every two Byzantine senders' payloads of one receiver, on the
    chunk indices both sent."""
    senders = sorted(s for s in received if s in byz)
    out = []
    for i, a in enumerate(senders):
        for b in senders[i + 1 :]:
            common = sorted(set(received[a]) & set(received[b]))
            if common:
                diff = [(received[a][c].double() - received[b][c].double()).reshape(-1) for c in common]
                out.append(float(np.sqrt(sum(float(d.pow(2).sum()) for d in diff))))
    return out


def _stash(method: Any, stash: list[Any], *, with_args: bool = False) -> Any:
    """``method`` that also leaves its result in ``stash`` (``(args, result)`` with ``with_args``)."""

    def traced(*args: Any) -> Any:
        out = method(*args)
        stash.append((args, out) if with_args else out)
        return out

    return traced


def probe_detector(rounds: int, sets: list[str], save: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]]:
    plan, net, cores = network("detector", rounds, sets)
    byz = set(plan.byzantine)
    out = []
    for r in range(1, rounds + 1):
        res = net.run_round(r)
        peers = {}
        for c in cores:
            if c.attack is not None:
                continue
            peers[c.node] = {
                "acc": res[c.node].metrics["test_accuracy"],
                "flagged": sorted(c.defense.flagged),
                "scores": {
                    f"{s}{'B' if s in byz else 'H'}": round(float(np.mean(q)), 3)
                    for s, q in sorted(c.defense.scores.items())
                },
            }
        print(json.dumps({"round": r, "peers": peers}), flush=True)
        out.append({"round": r, "peers": peers})
        save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=sorted(BASE))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="KEY=VALUE config override")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()

    def save(rows: list[dict[str, Any]]) -> None:  # after every round: a stopped probe keeps its rounds
        if args.out is not None:
            args.out.write_text(json.dumps({"mode": args.mode, "sets": args.sets, "rows": rows}, indent=1) + "\n")

    if args.mode == "detector":
        probe_detector(args.rounds, args.sets, save)
    else:
        probe_selection(args.mode, args.rounds, args.sets, save)


if __name__ == "__main__":
    main()
