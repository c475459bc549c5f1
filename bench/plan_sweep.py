"""Planning a sweep before its first run: every run planned from scratch against the
:class:`~coordinator.plan.Planner` that ``byzemu sweep`` uses.

For each sweep file, the runs' configs are loaded once (as ``load_sweep`` does), then
planned twice, back to back, ``--repeats`` times: *per run* calls ``build_plan`` for every
run with the model cache cleared first (a model built and run once per run, the labels
read once per run: the naive way), *planner* calls
``Planner.check`` (each distinct config once, labels once per dataset source, the model
once per shape). Datasets this machine lacks (CIFAR-10, Fashion-MNIST) are generated
small in the real format (``tests/support/datagen.py``); torch and the code are imported before
timing. One thread.

    .venv/bin/python bench/plan_sweep.py [--sweeps a.toml,b.toml] [--repeats 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from common import ROOT, median, save, table, warn_if_busy

SWEEPS = "alie,chunked_dl_mnist,chunked_dl_cifar10,masuda_shudo,guo_ubar"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sweeps", default=SWEEPS, help="sweep names in configs/sweeps/ (comma-separated)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    info = warn_if_busy()

    import torch

    torch.set_num_threads(1)
    from coordinator import plan as plan_mod
    from launch.sweeps.sweepfile import load_sweep
    from tests.support.datagen import overrides_for, write_cifar10, write_idx_dataset

    tmp = Path(tempfile.mkdtemp(prefix="byzemu-plan-"))
    write_cifar10(tmp / "cifar10")
    write_idx_dataset(tmp / "fashion")
    roots = {"cifar10": str(tmp / "cifar10"), "fashion_mnist": str(tmp / "fashion")}

    rows: list[list[Any]] = []
    raw: dict[str, Any] = {}
    for name in args.sweeps.split(","):
        path = ROOT / "configs" / "sweeps" / f"{name}.toml"
        runs = load_sweep(path, overrides_for(path, roots)).runs
        per_run, planner = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for run in runs:
                plan_mod._fitted_size.cache_clear()
                plan_mod.build_plan(run.cfg)
            per_run.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            p = plan_mod.Planner()
            for run in runs:
                p.check(run.cfg)
            planner.append(time.perf_counter() - t0)
        raw[name] = {"runs": len(runs), "per_run_s": per_run, "planner_s": planner}
        rows.append([name, len(runs), median(per_run), median(planner)])
    print(table(["sweep", "runs", "per run (s)", "planner (s)"], rows))
    save("plan_sweep", {"machine": info, "results": raw})


if __name__ == "__main__":
    main()
