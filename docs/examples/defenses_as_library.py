"""byzemu's defenses as a plain library: any aggregation rule on a stack of vectors, with no
emulator, no config file and no processes (``python docs/examples/defenses_as_library.py``;
``tests/test_library_example.py`` runs it and checks its output against values worked out
by hand).

A rule combines a node's own vector (row 0 here) with the vectors its neighbours sent (the
other rows): ``rule.aggregate(own, received, ctx)`` returns a new tensor and never modifies
its inputs. ``ctx`` says who sent what; rules that bound the number of Byzantine inputs by
the sender count or by the node's degree read it. docs/LIBRARY.md explains each piece.
"""

import torch

from peer.defenses import ChunkContext, build_defense


def aggregate(name: str, vectors: torch.Tensor, **params: object) -> torch.Tensor:
    """Aggregate the rows of ``vectors`` with rule ``name``: row 0 is the own vector, rows
    1.. the received ones (from senders 1, 2, ...)."""
    rule = build_defense(name, dict(params))
    own, received = vectors[0], list(vectors[1:])
    ctx = ChunkContext(node=0, round=1, index=0, senders=tuple(range(1, len(vectors))), degree=len(received))
    return rule.aggregate(own, received, ctx)


# Four honest vectors near (1, 2) and one Byzantine vector far away.
vectors = torch.tensor(
    [
        [1.0, 2.0],  # own
        [2.0, 3.0],
        [0.0, 1.0],
        [1.0, 2.0],
        [100.0, -100.0],  # Byzantine
    ]
)

RULES: list[tuple[str, dict[str, float]]] = [
    ("mean", {}),
    ("median", {}),
    ("trimmed_mean", {"f": 1}),
    ("krum", {"f": 1}),
    ("norm_clip", {"tau": 2.0}),
]
for name, params in RULES:
    out = aggregate(name, vectors, **params)
    print(f"{name:<13} {params!s:<12} -> {[round(v, 4) for v in out.tolist()]}")

# A misspelt name or parameter fails at once, naming the closest one.
try:
    build_defense("trimed_mean", {})
except ValueError as exc:
    print(f"error: {exc}")
