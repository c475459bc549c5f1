"""GPU peers measured on a GPU machine in one call: what ``train.device = "cuda"`` costs and
gives, against the same runs on that machine's CPU cores.

Steps (each with its own time limit; the results file is rewritten after every step, so
a call stopped at its limit still brings back what was measured):

1. ``context``: one process's device memory after it has initialised CUDA and trained and
   evaluated LeNet once (the GPU's used memory before and while it waits; no CUDA in this
   process), the figure ``launch/run/gpus.py`` counts per peer.
2. ``determinism``: 4 LeNet peers, 3 rounds, on the GPU through ``byzemu launch`` and
   ``byzemu reference``: every peer's final digest equal; the same run on the CPU for
   the accuracy difference.
3. ``lenet_16`` / ``cnn_guo_16``: 16 peers of the quickstart setting (MNIST IID, 3-regular),
   10 rounds, evaluation every 5, on the GPU and on the CPU cores: wall time, median
   round, accuracy.
4. ``peers_per_gpu``: LeNet peers on one GPU, 2 rounds, 32 / 64 / 128 / 192 / 256 until a
   run fails or its start does not fit (launched with ``--ignore-capacity``: the real
   limit, beside what the refusal estimate says); the GPU's peak used memory.
5. ``poster_cell``: the quickstart's clean CDL cell at the poster's 300 rounds on the GPU.

Run on the GPU machine from the repository root (its Python has torch, msgpack, networkx,
click and numpy; pyzmq travels as a wheel, see BENCHMARKS.md section 9 for the whole
command)::

    PYTHONPATH=.:.site python3 bench/gpu.py --out "$OUT" --budget 420

Writes ``OUT/gpu.json`` (``bench/results/gpu_<card>.json`` once brought back).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import QUICKSTART, ROOT, machine

#: the CLI through its module: the GPU machine has no byzemu console script
CLI = [sys.executable, "-m", "launch.cli"]
#: the quickstart config, named from the repository root (every command runs there)
CONFIG = str(QUICKSTART.relative_to(ROOT))


def set_args(sets: list[str]) -> list[str]:
    """``--set KEY=VALUE`` for each of ``sets``."""
    return [a for s in sets for a in ("--set", s)]


#: one process's CUDA context with LeNet trained and evaluated once; prints "ready", waits for stdin
_CONTEXT_CHILD = """
import sys, torch
from peer.models import build_model
import torch.nn.functional as F
m = build_model("lenet").cuda()
x, y = torch.randn(32, 1, 28, 28, device="cuda"), torch.randint(0, 10, (32,), device="cuda")
F.cross_entropy(m(x), y).backward()
with torch.inference_mode():
    m(torch.randn(1000, 1, 28, 28, device="cuda")).argmax(1)
torch.cuda.synchronize()
print("ready", torch.cuda.memory_reserved(), flush=True)
sys.stdin.readline()
"""


def gpu_used_mib() -> list[float]:
    """Used memory of every GPU (MiB), from nvidia-smi (no CUDA in this process)."""
    out = subprocess.run(
        ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout  # fmt: skip
    return [float(x) for x in out.split()]


def gpu_info() -> dict[str, Any]:
    """The GPUs (nvidia-smi), CUDA's version and the host (bench/common.machine)."""
    q = "name,driver_version,memory.total,compute_mode"
    out = subprocess.run(
        ["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader"], capture_output=True, text=True, timeout=30
    ).stdout.strip()
    import torch

    return {"nvidia_smi": out.splitlines(), "cuda": torch.version.cuda, **machine()}


def context_memory() -> dict[str, Any]:
    before = gpu_used_mib()
    child = subprocess.Popen(
        [sys.executable, "-c", _CONTEXT_CHILD], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None and child.stdin is not None
    line = child.stdout.readline().split()
    during = gpu_used_mib()
    child.stdin.write("\n")
    child.stdin.flush()
    child.wait(timeout=60)
    return {
        "used_before_mib": before,
        "used_with_one_process_mib": during,
        "process_mib": during[0] - before[0],
        "torch_reserved_mib": int(line[1]) / 2**20 if len(line) > 1 else None,
    }


def run(mode: str, out: Path, sets: list[str], *, timeout: float, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """One ``byzemu launch``/``reference`` of the quickstart with ``sets``; its figures."""
    cmd = [*CLI, mode, CONFIG, *set_args(sets), "--out", str(out), "--quiet", *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    shown = " ".join(["byzemu", *cmd[3:]]).replace(str(out.parent), "<tmp>")
    result: dict[str, Any] = {"command": shown, "rc": proc.returncode, "wall_s": round(wall, 2)}
    if proc.returncode != 0:
        result["stderr_tail"] = proc.stderr[-1500:]
        return result
    rounds = [json.loads(x) for x in (out / "rounds.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    last = rounds[-1]
    result.update(
        rounds=len(rounds),
        round_s_median=sorted(r["round_s"] for r in rounds)[len(rounds) // 2],
        accuracy=(summary.get("final_accuracy") or {}).get("mean"),
        digests=[p["metrics"]["digest"] for _, p in sorted(last["peers"].items(), key=lambda kv: int(kv[0]))],
    )
    return result


def determinism(tmp: Path) -> dict[str, Any]:
    sets = ["nodes=4", "rounds=3", "train.local_steps=2", "eval.every=3", "data.test_samples=1000"]
    gpu = [*sets, "train.device=cuda"]
    launch = run("launch", tmp / "det_launch", gpu, timeout=300)
    reference = run("reference", tmp / "det_reference", gpu, timeout=300)
    cpu = run("reference", tmp / "det_cpu", sets, timeout=300)
    return {
        "launch": launch,
        "reference": reference,
        "cpu_reference": cpu,
        "launch_equals_reference": launch.get("digests") == reference.get("digests") and bool(launch.get("digests")),
        "gpu_equals_cpu": launch.get("digests") == cpu.get("digests"),
        "accuracy_gpu_minus_cpu": (launch.get("accuracy") or 0) - (cpu.get("accuracy") or 0),
    }


def compare(tmp: Path, model: str) -> dict[str, Any]:
    sets = [f"model.name={model}", "rounds=10", "eval.every=5"]
    return {
        "gpu": run("launch", tmp / f"{model}_gpu", [*sets, "train.device=cuda"], timeout=400),
        "cpu": run("launch", tmp / f"{model}_cpu", sets, timeout=400),
    }


def peers_per_gpu(tmp: Path, deadline: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n in (32, 64, 128, 192, 256):
        if time.monotonic() > deadline:
            out.append({"nodes": n, "skipped": "time budget"})
            break
        sets = [f"nodes={n}", "rounds=2", "train.local_steps=2", "eval.every=2", "data.test_samples=1000"]
        sets += ["train.device=cuda", "runtime.register_timeout=300"]
        estimate = subprocess.run(
            [*CLI, "validate", CONFIG, *set_args(sets)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        ).stdout.strip().splitlines()[-1:]  # fmt: skip
        peak = 0.0
        proc = subprocess.Popen(
            [*CLI, "launch", CONFIG, *set_args(sets), "--out", str(tmp / f"n{n}")]
            + ["--quiet", "--ignore-capacity"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        t0 = time.perf_counter()
        while proc.poll() is None and time.perf_counter() - t0 < 300:
            peak = max(peak, gpu_used_mib()[0])
            time.sleep(1.0)
        if proc.poll() is None:
            proc.kill()
        err = proc.communicate()[1] if proc.stderr else ""
        row: dict[str, Any] = {
            "nodes": n,
            "rc": proc.returncode,
            "wall_s": round(time.perf_counter() - t0, 1),
            "gpu_used_peak_mib": peak,
            "estimate": estimate,
        }
        if proc.returncode != 0:
            row["stderr_tail"] = err[-1500:]
            out.append(row)
            break
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for gpu.json")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for all steps; later steps are skipped")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget
    results: dict[str, Any] = {"command": "PYTHONPATH=.:.site python3 bench/gpu.py --out OUT"}

    def save() -> None:
        (args.out / "gpu.json").write_text(json.dumps(results, indent=1) + "\n")

    with tempfile.TemporaryDirectory(prefix="byzemu-gpu-") as scratch:
        tmp = Path(scratch)
        steps = [
            ("machine", gpu_info),
            ("context", context_memory),
            ("determinism", lambda: determinism(tmp)),
            ("lenet_16", lambda: compare(tmp, "lenet")),
            ("cnn_guo_16", lambda: compare(tmp, "cnn_guo")),
            ("peers_per_gpu", lambda: peers_per_gpu(tmp, deadline - 90)),
            ("poster_cell", lambda: run("launch", tmp / "poster", ["rounds=300", "train.device=cuda"], timeout=400)),
        ]
        for name, step in steps:
            if time.monotonic() > deadline:
                results[name] = {"skipped": "time budget"}
                continue
            t0 = time.perf_counter()
            print(f"== {name}", flush=True)
            try:
                results[name] = step()
            except Exception as exc:  # keep going: the other steps still measure
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"   {time.perf_counter() - t0:.1f} s: {json.dumps(results[name])[:400]}", flush=True)
            save()
    save()


if __name__ == "__main__":
    main()
