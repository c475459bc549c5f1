"""The run configuration: schema, TOML loading, ``--set`` overrides and field checks.

A run is described by one TOML file whose tables mirror the dataclasses below. The
coordinator resolves it (defaults filled in, relative paths made absolute) and ships the
resolved form to every peer inside the assignment message, so coordinator, peers and the
in-process reference all work from the same values.

Every field is typed; loading rejects an unknown field, a value of the wrong type and a
value outside its range with a :class:`ConfigError` whose one-line message names the
dotted field, e.g. ``train.lr: expected a number, got 'fast'``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.config_text import apply_override as apply_override  # re-exported: its old home
from protocol.config_text import build, merge, read_toml
from protocol.config_text import parse_value as parse_value
from protocol.config_text import to_toml as to_toml
from protocol.devices import device_problem
from protocol.errors import ConfigError as ConfigError  # re-exported: its old home
from protocol.names import unknown_in
from protocol.network_config import NetworkConfig, check_network

CURVE_MODES = ("auto", "on", "off")  #: values of runtime.curve
RELEASE_MODES = ("evaluation", "round")  #: values of runtime.release_memory


def _host_of(address: str) -> str:
    """``HOST`` of ``tcp://HOST:PORT`` (brackets of an IPv6 literal removed)."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host.strip("[]")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP literal) is this machine's loopback."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name or "*": reachable from elsewhere, as far as we know
        return False


@dataclass
class TopologyConfig:
    """Communication graph, built with networkx by the coordinator."""

    #: graph family; graphs that can come out disconnected (regular, erdos_renyi) are
    #: resampled with new seeds until connected
    kind: str = "regular"
    degree: int = 3  #: degree of a regular graph (n * degree even, degree < n)
    p: float = 0.4  #: edge probability of erdos_renyi (and of the links of byzantine.placement = added)
    k: int = 4  #: even neighbor count per node of the Watts–Strogatz small_world before rewiring
    rewire: float = 0.1  #: rewiring probability of small_world
    #: edge-list file for kind = edge_list: one "u v" edge per line, # comments
    edge_list: str = ""
    #: how the graph changes between rounds (coordinator/dynamics.py): static (one graph);
    #: resample (a new graph of the same kind every `every` rounds); el_oracle (a fresh
    #: s-regular graph, EL-Oracle); el_local (each peer pushes to s random others, directed,
    #: EL-Local); schedule (per-round edge lists from the file `schedule`)
    dynamic: str = "static"
    every: int = 1  #: rounds each graph of resample, el_oracle and el_local lasts
    s: int = 3  #: peers each one sends to per round under el_oracle and el_local (1 <= s < nodes)
    #: per-round edge-list file for dynamic = schedule: "round R" lines, each followed by
    #: the "u v" edges of rounds R.. until the next "round" line; # comments
    schedule: str = ""


@dataclass
class DataConfig:
    """Dataset, where its files are, and how the training set is split into shards."""

    #: dataset registry name (one module each in peer/data/sets/; docs/DATA_AND_MODELS.md)
    dataset: str = "mnist"
    #: folder with the dataset files, relative to the config file: for MNIST-style sets the
    #: four IDX files, gzipped or not; for cifar10 the folder holding cifar-10-batches-py/
    root: str = "data/mnist"
    #: how the training set is split into shards: iid; dirichlet (label skew, Hsu et al.
    #: 2019); shards (label-sorted shards, McMahan et al. 2017); fltrust (the sample-allocation
    #: bias of Cao et al. 2021, as in DFL-Dual); docs/REFERENCES.md
    split: str = "iid"
    alpha: float = 0.5  #: Dirichlet concentration for split = dirichlet
    #: home-group probability for split = fltrust, in [0, 1]: nodes form min(classes, nodes)
    #: groups, a sample goes to its class's home group with probability p, else to another
    #: group uniformly (1 / groups is IID in expectation)
    p: float = 0.5
    shards_per_node: int = 2  #: label-sorted shards per node for split = shards
    samples_per_node: int = 0  #: cap on each node's shard size; 0 keeps the whole shard
    synthetic_size: int = 2000  #: training-set size of the synthetic dataset (test set: max(500, size / 4))
    test_samples: int = 0  #: evaluate on the first N test samples; 0 = whole test set


@dataclass
class ModelConfig:
    """Model architecture; every peer starts from the same seeded initialisation."""

    #: model registry name (peer/models.py), built for the dataset's image shape;
    #: architectures and parameter counts in docs/DATA_AND_MODELS.md
    name: str = "lenet"


@dataclass
class TrainConfig:
    """Local SGD that each peer runs at the start of every round."""

    local_steps: int = 10  #: SGD steps per round (when local_epochs = 0)
    #: E > 0: each round is E full passes over the local shard (E * floor(shard / batch_size)
    #: steps, replacing local_steps; Sun et al. 2024, §4.2); 0 = local_steps per round
    local_epochs: int = 0
    batch_size: int = 32  #: mini-batch size
    lr: float = 0.05  #: learning rate (the base rate of lr_schedule)
    #: SGD momentum in [0, 1); the buffer persists across rounds and is checkpointed
    #: (peer.training.SGD: torch.optim.SGD's update bit for bit, without its import cost)
    momentum: float = 0.0
    weight_decay: float = 0.0  #: L2 weight decay
    #: learning rate over local epochs k (passes over the shard; peer/schedule.py): constant;
    #: fading = lr * lr_fading / (lr_fading + k) (Guo et al. 2022, Sec. VI-A);
    #: step = lr * lr_step_gamma ^ (k // lr_step_epochs)
    lr_schedule: str = "constant"
    lr_fading: float = 20.0  #: c of the fading schedule, > 0
    lr_step_epochs: int = 10  #: E of the step schedule, >= 1
    lr_step_gamma: float = 0.1  #: gamma of the step schedule, in (0, 1]
    #: where a peer trains and evaluates (protocol/devices.py): cpu; cuda (round-robin over
    #: the visible CUDA devices by node id, node i on cuda:(i mod k)); cuda:N; auto (cuda
    #: when a CUDA device is visible, else cpu). Chunks travel as host bytes either way
    device: str = "cpu"
    #: per-node override of device, e.g. { "0" = "cuda:1", "5" = "cpu" }
    device_map: dict[str, str] = field(default_factory=dict)


@dataclass
class ChunksConfig:
    """How a model is cut into chunks and which chunks go to which neighbor."""

    count: int = 8  #: C, number of near-equal contiguous chunks the flattened model is split into (>= 2)
    per_neighbor: int = 4  #: chunks each neighbor receives per round, in 1..C-1 (never the whole model)
    #: random: a fresh seeded permutation per (node, round), neighbors take consecutive windows
    policy: str = "random"


@dataclass
class DefenseConfig:
    """Aggregation rule run inside every honest peer, chunk index by chunk index."""

    #: aggregation rule (registry name; docs/DEFENSES.md); cdl is the plain chunk-wise average
    name: str = "cdl"
    #: keyword arguments of the rule, e.g. { tau = 2.0 } for norm_clip (byzemu list defenses)
    params: dict[str, Any] = field(default_factory=dict)
    #: pre-aggregation steps run before the rule, in order (e.g. ["nnm"]; docs/DEFENSES.md)
    pre: list[str] = field(default_factory=list)
    #: keyword arguments of the pre steps, by step name (e.g. {bucketing = {s = 2}})
    pre_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class ByzantineConfig:
    """Which peers are Byzantine and which attack they run."""

    count: int = 0  #: number of Byzantine peers (or fraction, not both)
    fraction: float = 0.0  #: fraction of peers that are Byzantine, rounded half up
    #: where the Byzantine peers sit: random (seeded); explicit (the ids in nodes);
    #: dominating (a majority of target's neighbors, adding edges when its degree is too
    #: small; too few Byzantine peers for a majority is an error naming the count needed);
    #: added (the graph is built over the benign peers, then each Byzantine peer is
    #: linked to each benign peer with probability topology.p, at least once; Guo et al.
    #: 2022, Sec. VI-A); honest_connected (seeded, the honest peers induce a connected
    #: subgraph so each has an honest neighbor, as DFL-Dual's setting; checked at plan
    #: time); coordinator/roles.py
    placement: str = "random"
    nodes: list[int] = field(default_factory=list)  #: explicit Byzantine ids
    target: int = 0  #: the honest peer that placement = dominating surrounds
    #: attack every Byzantine peer runs (registry name; docs/ATTACKS.md); none is a
    #: Byzantine-labelled honest peer, a control
    attack: str = "none"
    #: keyword arguments of the attack, e.g. { sigma = 1.0, start_round = 5 }
    params: dict[str, Any] = field(default_factory=dict)
    #: what knowledge-based attacks use: observed (the round's chunks from honest neighbors,
    #: shared among colluders) or oracle (every honest model); recorded in summary.json
    knowledge: str = "observed"

    @property
    def present(self) -> bool:
        """True when the config asks for any Byzantine peer (by count, fraction or ids)."""
        return bool(self.count or self.fraction or self.nodes)


@dataclass
class EvalConfig:
    """When peers evaluate on the test set; the last round is always evaluated."""

    every: int = 5  #: evaluate every K rounds
    #: evaluation batch size over which the test loss is summed (the forward passes run over
    #: 128 images at a time, which for lenet, mlp and logreg leaves every number bit-identical)
    batch_size: int = 1000
    #: the convergence round is the first evaluation round whose honest mean accuracy
    #: reaches this fraction of the run's best (docs/RESULTS.md)
    convergence_fraction: float = 0.95
    #: Byzantine peers evaluate too (their metrics get test accuracy/loss/ASR); off by
    #: default: no summary uses them, and evaluation is most of an evaluation round's CPU
    byzantine: bool = False


@dataclass
class RuntimeConfig:
    """Deadlines and limits of the multi-process runtime."""

    register_timeout: float = 120.0  #: seconds the coordinator waits for all peers to register (and be ready)
    round_timeout: float = 300.0  #: seconds after round start before laggards are marked failed
    chunk_timeout: float = 120.0  #: seconds a peer waits for its neighbors' chunks in a round (< round_timeout)
    max_message_bytes: int = 64 * 1024 * 1024  #: larger data-plane messages are dropped
    bind_host: str = "127.0.0.1"  #: interface a local peer binds its data socket on
    #: ZeroMQ CURVE on both planes (docs/FAILURES.md, Identity): auto is on unless the
    #: coordinator's control address and bind_host are both loopback; models are bit-identical
    #: either way; recorded in summary.json
    curve: str = "auto"
    #: every K rounds each peer checkpoints its whole state for byzemu launch --resume
    #: (0 = never); see docs/FAILURES.md
    checkpoint_every: int = 0
    #: seconds a peer goes on after losing its control connection before it exits (status 1)
    coordinator_timeout: float = 10.0
    #: every data-plane message ends with an HMAC-SHA256 tag under a per-link key from the
    #: assignment, and receivers drop one whose tag fails (bad_mac): sender identity for
    #: implementations that cannot read CURVE's User-Id (docs/PROTOCOL.md, Sender MAC)
    sender_mac: bool = False
    #: seconds the coordinator holds the start of a round in which a churn slot (a new or
    #: returning peer, churn.join / churn.leave) is due while its process has not registered
    #: yet; after it the slot is pending (away) until the process registers
    join_timeout: float = 30.0
    #: when a peer hands its C heap's free pages back to the OS (peer/heap.py): after its
    #: set-up and each round it evaluated in (evaluation), or after every round (round:
    #: its training step's working set too, which the next round faults in again; less
    #: memory per peer for more CPU, for many peers per host: docs/PERFORMANCE.md)
    release_memory: str = "evaluation"
    #: at most this many peers of one host compute at once (training, aggregation,
    #: evaluation; 0 = no limit): with many more peers than cores, fewer peers then hold a
    #: training step's working memory at the same moment (peer/slots.py); results unchanged
    compute_slots: int = 0

    def curve_on(self, control_address: str) -> bool:
        """Whether a run whose coordinator binds ``control_address`` uses CURVE.

        ``auto`` is on as soon as the coordinator's control address or ``bind_host`` (the
        interface ``byzemu launch`` peers bind) is not a loopback address, i.e. whenever
        another host could reach a socket of the run.
        """
        if self.curve != "auto":
            return self.curve == "on"
        return not (is_loopback(_host_of(control_address)) and is_loopback(self.bind_host))


@dataclass
class StragglersConfig:
    """Peers that compute slower: their local training costs ``factor`` times its measured
    wall time (the peer sleeps the difference after training), so a straggler's chunks
    leave later while every number it computes stays the same (peer/stragglers.py)."""

    #: slowdown of a straggler, >= 1 (1 = no stragglers); with distribution = uniform, the
    #: largest slowdown
    factor: float = 1.0
    #: how each straggler's slowdown is set: fixed (every straggler takes factor) or
    #: uniform (each draws its own from U[1, factor], seeded by the run seed and its id)
    distribution: str = "fixed"
    fraction: float = 0.0  #: fraction of peers that straggle, chosen with the run seed, rounded half up
    nodes: list[int] = field(default_factory=list)  #: explicit straggler ids (instead of fraction)


@dataclass
class ChurnConfig:
    """Peers that leave the run for some rounds and come back with the state they left with,
    new peers that join mid-run (their processes may register late: coordinator/joins.py),
    peers whose process leaves and returns from its checkpoint, and scheduled crashes
    (coordinator/churn.py); the graph of a round leaves out the peers not in it."""

    #: explicit absences: [node, first round away, last round away] triples
    away: list[list[int]] = field(default_factory=list)
    #: seeded churn: in every window of `every` rounds after the first, this fraction of the
    #: peers (rounded half up, drawn anew per window from the seed) is away
    rate: float = 0.0
    every: int = 10  #: rounds per window of rate churn
    #: new peers: [node, round] pairs; the node takes no part before that round, then
    #: starts from a neighbor's model (join_model) with a fresh optimizer and defense
    join: list[list[int]] = field(default_factory=list)
    #: a joining peer's first model: neighbor (the current model of its lowest-id sender
    #: of its join round) or average (the mean of its join round's senders' models)
    join_model: str = "neighbor"
    #: scheduled crashes: [node, round] pairs; the peer process exits without a word when
    #: that round starts and the coordinator marks it failed, as for any crash
    crash: list[list[int]] = field(default_factory=list)
    #: returning peers: [node, leave round, return round] triples; the node's process ends
    #: before the leave round and a new one takes part again from the return round with the
    #: node's last checkpoint before the leave (needs runtime.checkpoint_every > 0)
    leave: list[list[int]] = field(default_factory=list)


@dataclass
class RunConfig:
    """A whole experiment."""

    name: str = "run"  #: run name, the prefix of its results folder
    #: seed of everything: graph, roles, shards, model init, batches, chunk policy, attacks
    seed: int = 0
    nodes: int = 16  #: number of peers N (>= 2)
    rounds: int = 30  #: rounds to run
    topology: TopologyConfig = field(default_factory=TopologyConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    chunks: ChunksConfig = field(default_factory=ChunksConfig)
    defense: DefenseConfig = field(default_factory=DefenseConfig)
    byzantine: ByzantineConfig = field(default_factory=ByzantineConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    stragglers: StragglersConfig = field(default_factory=StragglersConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)  #: link conditions (protocol/network_config.py)
    churn: ChurnConfig = field(default_factory=ChurnConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (TOML/JSON/msgpack friendly)."""
        return dataclasses.asdict(self)

    def eval_round(self, round_: int) -> bool:
        """True when peers evaluate after aggregating round ``round_`` (1-based)."""
        return round_ % self.eval.every == 0 or round_ == self.rounds


def config_fingerprint(cfg: RunConfig) -> str:
    """Short SHA-256 of every field that affects a run's results (all but ``runtime.*`` and
    ``stragglers.*``, which change only when things happen): checkpoints carry it, and
    ``byzemu launch --resume`` refuses a config that differs. ``train.device`` counts
    unless it is the default CPU (which keeps the fingerprints of runs from before it)."""
    data = cfg.to_dict()
    data.pop("runtime", None)
    data.pop("stragglers", None)
    train = data.get("train", {})
    if train.get("device") == "cpu" and not train.get("device_map"):  # as before the device existed
        train.pop("device", None)
        train.pop("device_map", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------- loading


def from_dict(data: dict[str, Any]) -> RunConfig:
    """Build and check a :class:`RunConfig` from a nested dict (e.g. parsed TOML)."""
    cfg = build(RunConfig, data)
    check(cfg)
    return cfg


#: top-level keys only a sweep file has (``launch/sweeps/sweepfile.py``)
SWEEP_ONLY_KEYS = ("axes", "base", "extends", "repeats")


def looks_like_sweep(data: dict[str, Any]) -> bool:
    """True for the table of a sweep file (a ``base`` or ``extends``, maybe ``axes``,
    ``repeats``, ``[set]``), which no run config has."""
    return bool(set(data) & set(SWEEP_ONLY_KEYS))


def load(path: str | Path, overrides: typing.Sequence[str] = (), *, resolve_paths: bool = True) -> RunConfig:
    """Load a TOML config file, apply ``--set`` overrides and check it.

    Relative ``data.root``, ``topology.edge_list`` and ``network.link_file`` in the file are taken relative to the
    file's folder; those given by ``--set`` relative to the current directory.
    """
    path = Path(path)
    data = read_toml(path, "config")
    if looks_like_sweep(data):
        keys = ", ".join(sorted(set(data) & set(SWEEP_ONLY_KEYS)))
        raise ConfigError(
            f"{path} is a sweep file (it has {keys}), not a run's config: run it with `byzemu sweep {path}`; "
            f"`byzemu validate {path}` checks every run of it"
        )
    base = path.resolve().parent
    if resolve_paths:
        _resolve_relative(data, base)
    override_data: dict[str, Any] = {}
    for item in overrides:
        apply_override(override_data, item)
    if resolve_paths:
        _resolve_relative(override_data, Path.cwd())
    merge(data, override_data)
    if resolve_paths:
        table = data.setdefault("data", {})
        if isinstance(table, dict) and "root" not in table:  # a non-table fails in from_dict
            table["root"] = str((base / DataConfig.root).resolve())
    return from_dict(data)


def _resolve_relative(data: dict[str, Any], base: Path) -> None:
    for table, key in (("data", "root"), ("topology", "edge_list"), ("topology", "schedule"), ("network", "link_file")):
        value = data.get(table, {}).get(key) if isinstance(data.get(table), dict) else None
        if isinstance(value, str) and value and not Path(value).is_absolute():
            data[table][key] = str((base / value).resolve())


# ----------------------------------------------------------------------------- checks


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def check(cfg: RunConfig) -> None:
    """Field-level range checks and the attack's and defense's names and parameter names
    (:mod:`protocol.names`, no torch); cross-checks that need the graph, the data or the
    registries live in ``coordinator/plan.py`` (``build_plan``)."""
    _require(cfg.nodes >= 2, f"nodes={cfg.nodes}: need at least 2 peers")
    _require(cfg.rounds >= 1, f"rounds={cfg.rounds}: need at least 1 round")
    t = cfg.train
    _require(t.local_steps >= 0, f"train.local_steps={t.local_steps}: must be >= 0")
    _require(
        t.local_epochs >= 0, f"train.local_epochs={t.local_epochs}: must be >= 0 (0 = train.local_steps per round)"
    )
    _require(t.batch_size >= 1, f"train.batch_size={t.batch_size}: must be >= 1")
    _require(t.lr >= 0, f"train.lr={t.lr}: must be >= 0")
    _require(0 <= t.momentum < 1, f"train.momentum={t.momentum}: must be in [0, 1)")
    _require(t.weight_decay >= 0, f"train.weight_decay={t.weight_decay}: must be >= 0")
    _require(
        t.lr_schedule in ("constant", "fading", "step"),
        f"train.lr_schedule={t.lr_schedule!r}: choose one of constant, fading, step",
    )
    _require(t.lr_fading > 0, f"train.lr_fading={t.lr_fading}: must be > 0")
    _require(t.lr_step_epochs >= 1, f"train.lr_step_epochs={t.lr_step_epochs}: must be >= 1")
    _require(0 < t.lr_step_gamma <= 1, f"train.lr_step_gamma={t.lr_step_gamma}: must be in (0, 1]")
    _check_devices(cfg)
    c = cfg.chunks
    _require(c.count >= 2, f"chunks.count={c.count}: need at least 2 chunks")
    _require(
        1 <= c.per_neighbor < c.count,
        f"chunks.per_neighbor={c.per_neighbor}: must be in [1, chunks.count-1={c.count - 1}]"
        " so that no neighbor receives the whole model",
    )
    _require(c.policy in ("random",), f"chunks.policy={c.policy!r}: valid policies are random")
    _require(
        cfg.byzantine.knowledge in ("observed", "oracle"),
        f"byzantine.knowledge={cfg.byzantine.knowledge!r}: valid modes are observed, oracle",
    )
    e = cfg.eval
    _require(e.every >= 1, f"eval.every={e.every}: must be >= 1")
    _require(e.batch_size >= 1, f"eval.batch_size={e.batch_size}: must be >= 1")
    _require(
        0 < e.convergence_fraction <= 1,
        f"eval.convergence_fraction={e.convergence_fraction}: must be in (0, 1]",
    )
    d = cfg.data
    _require(d.samples_per_node >= 0, f"data.samples_per_node={d.samples_per_node}: must be >= 0")
    _require(d.test_samples >= 0, f"data.test_samples={d.test_samples}: must be >= 0")
    _require(d.synthetic_size >= 10, f"data.synthetic_size={d.synthetic_size}: must be >= 10")
    r = cfg.runtime
    for name in ("register_timeout", "round_timeout", "chunk_timeout"):
        value = getattr(r, name)
        _require(value > 0, f"runtime.{name}={value}: must be > 0 seconds")
    _require(
        r.chunk_timeout < r.round_timeout,
        f"runtime.chunk_timeout={r.chunk_timeout} must be below runtime.round_timeout="
        f"{r.round_timeout} so peers report before the coordinator's deadline",
    )
    _require(r.max_message_bytes >= 1024, "runtime.max_message_bytes: must be >= 1024")
    _require(r.checkpoint_every >= 0, f"runtime.checkpoint_every={r.checkpoint_every}: must be >= 0 (0 = off)")
    _require(r.coordinator_timeout > 0, f"runtime.coordinator_timeout={r.coordinator_timeout}: must be > 0 seconds")
    _require(
        r.curve in CURVE_MODES,
        f"runtime.curve={r.curve!r}: valid values are {', '.join(CURVE_MODES)}",
    )
    _require(r.compute_slots >= 0, f"runtime.compute_slots={r.compute_slots}: must be >= 0 (0 = no limit)")
    _require(
        r.release_memory in RELEASE_MODES,
        f"runtime.release_memory={r.release_memory!r}: valid values are {', '.join(RELEASE_MODES)}",
    )
    _check_stragglers(cfg)
    check_network(cfg.network)
    _check_dynamic(cfg)
    _check_churn(cfg)
    defense, byz = cfg.defense, cfg.byzantine
    unknown = unknown_in(defense.name, defense.params, defense.pre, defense.pre_params, byz.attack, byz.params)
    _require(unknown is None, unknown or "")


def _check_devices(cfg: RunConfig) -> None:
    t = cfg.train
    problem = device_problem(t.device)
    _require(problem is None, f"train.device: {problem}")
    _require(isinstance(t.device_map, dict), "train.device_map: give a table of node id = device")
    for key, value in t.device_map.items():
        _require(
            str(key).isdigit() and int(key) < cfg.nodes,
            f"train.device_map: key {key!r} is not a node id in 0..{cfg.nodes - 1}",
        )
        problem = device_problem(value)
        _require(problem is None, f"train.device_map[{key!r}]: {problem}")


STRAGGLER_DISTRIBUTIONS = ("fixed", "uniform")  #: values of stragglers.distribution


def _check_stragglers(cfg: RunConfig) -> None:
    s = cfg.stragglers
    _require(s.factor >= 1, f"stragglers.factor={s.factor}: must be >= 1 (1 = no slowdown)")
    _require(
        s.distribution in STRAGGLER_DISTRIBUTIONS,
        f"stragglers.distribution={s.distribution!r}: valid values are {', '.join(STRAGGLER_DISTRIBUTIONS)}",
    )
    _require(0 <= s.fraction <= 1, f"stragglers.fraction={s.fraction}: must be in [0, 1]")
    _require(not (s.fraction and s.nodes), "stragglers: give fraction or nodes, not both (nodes lists the stragglers)")
    bad = [n for n in s.nodes if not 0 <= n < cfg.nodes]
    _require(not bad, f"stragglers.nodes={s.nodes}: ids must be in 0..{cfg.nodes - 1} (nodes={cfg.nodes})")


DYNAMICS = ("static", "resample", "el_oracle", "el_local", "schedule")  #: values of topology.dynamic


def _check_dynamic(cfg: RunConfig) -> None:
    """topology.dynamic and its parameters (the schedule file is read by the plan)."""
    t = cfg.topology
    _require(t.dynamic in DYNAMICS, f"topology.dynamic={t.dynamic!r}: choose one of {', '.join(DYNAMICS)}")
    _require(t.every >= 1, f"topology.every={t.every}: must be >= 1 round")
    if t.dynamic in ("el_oracle", "el_local"):
        _require(
            1 <= t.s < cfg.nodes,
            f"topology.s={t.s}: a peer sends to s others, so 1 <= s < nodes={cfg.nodes}; lower topology.s",
        )
    if t.dynamic == "schedule":
        _require(bool(t.schedule), "topology.dynamic=schedule needs a file; set topology.schedule to its path")


def _check_churn(cfg: RunConfig) -> None:
    """churn.* on their own (whether a round is left without peers is the plan's check)."""
    c = cfg.churn
    _require(0.0 <= c.rate < 1.0, f"churn.rate={c.rate}: must be in [0, 1)")
    _require(c.every >= 1, f"churn.every={c.every}: must be >= 1 round")
    for item in c.away:
        _require(
            len(item) == 3,
            f"churn.away entry {item}: expected [node, first round away, last round away]",
        )
        node, first, last = item
        _require(
            0 <= node < cfg.nodes,
            f"churn.away entry {item}: node {node} does not exist (nodes 0..{cfg.nodes - 1}); fix the node id",
        )
        _require(
            1 <= first <= last <= cfg.rounds,
            f"churn.away entry {item}: rounds must satisfy 1 <= first <= last <= rounds={cfg.rounds}",
        )
    _require(
        c.join_model in JOIN_MODELS,
        f"churn.join_model={c.join_model!r}: valid values are {', '.join(JOIN_MODELS)}",
    )
    rounds: dict[str, dict[int, int]] = {"join": {}, "crash": {}}
    for key in ("join", "crash"):
        for item in getattr(c, key):
            _require(len(item) == 2, f"churn.{key} entry {item}: expected [node, round]")
            node, round_ = item
            _require(
                0 <= node < cfg.nodes,
                f"churn.{key} entry {item}: node {node} does not exist (nodes 0..{cfg.nodes - 1}); fix the node id",
            )
            _require(
                1 <= round_ <= cfg.rounds,
                f"churn.{key} entry {item}: round {round_} is outside 1..rounds={cfg.rounds}; fix the round",
            )
            _require(node not in rounds[key], f"churn.{key} names node {node} twice; give each node one round")
            rounds[key][node] = round_
    for node, crash in rounds["crash"].items():
        join = rounds["join"].get(node, 0)
        _require(
            crash > join,
            f"churn.crash entry [{node}, {crash}]: node {node} joins in round {join}, so it can crash only after it",
        )


JOIN_MODELS = ("neighbor", "average")  #: values of churn.join_model
