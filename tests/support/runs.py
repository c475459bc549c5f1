"""Small run configs for the tests that start runs: the TOML text of a few peers (by
default on a ring, with the synthetic dataset and logistic regression), any table changed.

    small_config("faults", seed=2, nodes=5, rounds=4, chunks={"count": 4, "per_neighbor": 2},
                 runtime={"round_timeout": 8.0})

Each keyword after ``rounds`` is a table of the config: its keys replace or extend those of
the default table of that name (``SMALL``), or make a new table; ``None`` leaves the table
out. The text is rendered by ``protocol.config.to_toml``, as ``config.toml`` in a run
folder is.
"""

from __future__ import annotations

from typing import Any

from protocol.config import to_toml

#: the tables every small config starts from
SMALL: dict[str, dict[str, Any]] = {
    "topology": {"kind": "ring"},
    "data": {"dataset": "synthetic", "synthetic_size": 200, "root": ""},
    "model": {"name": "logreg"},
    "train": {"local_steps": 1},
    "eval": {"every": 1},
}


def small_config(name: str, *, seed: int, nodes: int = 4, rounds: int = 2, **tables: dict[str, Any] | None) -> str:
    """The TOML text of a small run named ``name`` (see the module docstring)."""
    merged = {key: dict(table) for key, table in SMALL.items()}
    for key, table in tables.items():
        if table is None:
            merged.pop(key, None)
        else:
            merged[key] = {**merged.get(key, {}), **table}
    return to_toml({"name": name, "seed": seed, "nodes": nodes, "rounds": rounds, **merged})


#: the small run of the network tests: 3 peers on a 2-regular graph, mlp on synthetic data
#: (the model's flat vector is 50,890 float32; 2 of 4 chunks per neighbour), deadlines long
#: enough for slow links on a loaded machine
NETWORK_RUN: dict[str, dict[str, Any]] = {
    "topology": {"kind": "regular", "degree": 2},
    "data": {"dataset": "synthetic", "synthetic_size": 300},
    "model": {"name": "mlp"},
    "train": {"local_steps": 1, "batch_size": 16},
    "chunks": {"count": 4, "per_neighbor": 2},
    "eval": {"every": 100},
    "runtime": {"register_timeout": 120.0, "round_timeout": 100.0, "chunk_timeout": 60.0},
}


def network_config(name: str, *, seed: int, rounds: int, network: dict[str, Any]) -> str:
    """The TOML text of :data:`NETWORK_RUN` with the ``[network]`` table ``network``."""
    return small_config(name, seed=seed, nodes=3, rounds=rounds, **NETWORK_RUN, network=network)


def synthetic_sets(cfg: Any, size: int = 200) -> tuple[Any, Any]:
    """The synthetic training set and a test subset of ``cfg``'s seed, for node cores built
    in process (``NodeCore(assignment, train_data=..., test_set=...)``)."""
    from peer import data as datasets
    from peer.data import test_subset

    train = datasets.load("synthetic", None, train=True, synthetic_size=size, seed=cfg.seed)
    test = test_subset(datasets.load("synthetic", None, train=False, synthetic_size=size, seed=cfg.seed), 0)
    return train, test
