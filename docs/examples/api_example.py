"""byzemu from Python, notebook style: each ``# %%`` block is a cell (VS Code, Jupyter's
"run as cells", or plain ``python docs/examples/api_example.py``).

It runs the quickstart config, cut down to a few seconds (4 peers, synthetic data, 4
rounds) with a backdoor peer against norm clipping, once as a real local cluster and once
in one process, and looks at the results as pandas DataFrames. ``tests/test_api.py``
runs this file. Needs the analysis extra: ``pip install -e ".[analysis]"``.
"""

# %% load a config with overrides, and validate it
import sys
import tempfile
from pathlib import Path

import pandas as pd

from launch import api

pd.set_option("display.width", 200)

ROOT = Path(__file__).resolve().parents[2]
cfg = api.load_config(
    ROOT / "configs" / "quickstart.toml",
    {
        "nodes": 4, "rounds": 4, "topology.kind": "ring",
        "data.dataset": "synthetic", "data.synthetic_size": 400, "model.name": "logreg",
        "eval.every": 2,
        "byzantine.count": 1, "byzantine.attack": "backdoor", "defense.name": "norm_clip",
    },
)
plan = api.validate(cfg)  # a config that cannot run raises here, with a one-line message
print(f"Byzantine peers: {plan.byzantine}")

# %% run it: a real local cluster (one OS process per peer), then the in-process reference
out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="byzemu-api-"))
cluster_dir = api.launch(cfg, out / "cluster")
reference_dir = api.launch(cfg, out / "reference", in_process=True)

# %% the results as DataFrames
tables = api.results(out)
runs, rounds, peers = tables["runs"], tables["rounds"], tables["peer_rounds"]
print(runs[["run", "mode", "final_accuracy_mean", "final_accuracy_worst", "final_attack_success_rate_mean"]])

# honest accuracy per evaluation round, one column per run
curve = rounds.dropna(subset=["test_accuracy_mean"]).pivot(index="round", columns="run", values="test_accuracy_mean")
print(curve)

# the Byzantine peer's traffic against the honest peers'
print(peers.groupby("role")["traffic.sent_bytes"].sum())

# the cluster and the reference computed the same models (same digests in every round)
digests = peers.pivot_table(index=["round", "peer"], columns="run", values="digest", aggfunc="first")
assert (digests["cluster"] == digests["reference"]).all()
print(f"cluster and reference agree on all {len(digests)} (round, peer) models")
