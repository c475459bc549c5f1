"""The names a config may give its attack, defense and pre-aggregation steps and their
parameters, known without importing torch, and the one-line messages for a name or a
parameter that is not among them.

:func:`protocol.config.check` runs :func:`unknown_in` while it loads a config, so a
misspelt ``defense.name`` or ``defense.params.tau`` fails in well under a second, before
torch is imported, with the closest name suggested (``did you mean 'norm_clip'?``) and the
parameter named by its path in the config. The registries (``peer/registry.py``) raise
the same messages. The tables are the registries' contents written out: a new attack or
defense adds its line here, and tests/test_names.py, which holds the tables equal to the
registries, prints the line to add.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: every defense (defense.name) a config can name -> the parameters it takes
DEFENSE_PARAMS: dict[str, tuple[str, ...]] = {
    "adaptive_norm_clip": ("clip_own", "factor", "momentum", "pool"),
    "bridge": ("b", "guf_alpha", "rho", "rho_central"),
    "bridge_m": ("guf_alpha", "own_candidate"),
    "bulyan": ("f", "guf_alpha", "own_candidate", "rho", "rho_central"),
    "caf": ("f",),
    "cdl": ("own_weight",),
    "centered_clip": ("iterations", "tau"),
    "clipped_gossip": ("tau",),
    "dbridge": ("f", "guf_alpha", "own_candidate", "rho", "rho_central"),
    "dbulyan": ("f", "guf_alpha", "own_candidate", "rho", "rho_central"),
    "dfl_detector": ("gap_refs", "granularity", "warmup", "window"),
    "dfl_dual": (
        "alpha",
        "c1",
        "c2",
        "granularity",
        "inversion_lr",
        "inversion_steps",
        "samples_per_class",
        "scale",
        "seed",
    ),
    "dkrum": ("f", "granularity", "guf_alpha", "neighbourhood", "own_candidate", "rho", "rho_central"),
    "dmedian": ("guf_alpha", "own_candidate"),
    "fltrust": ("granularity",),
    "geomed": ("eps", "max_iter", "tol"),
    "ios": ("f", "granularity"),
    "krum": ("f", "granularity", "guf_alpha", "neighbourhood", "own_candidate", "rho", "rho_central"),
    "loss_threshold": ("alpha", "patience", "step", "theta0", "theta_min"),
    "mda": ("f",),
    "meamed": ("f",),
    "mean": (),
    "median": ("guf_alpha", "own_candidate"),
    "monna": ("f",),
    "multi_krum": ("f", "granularity", "guf_alpha", "m_select", "neighbourhood", "own_candidate", "rho", "rho_central"),
    "norm_clip": ("clip_own", "tau"),
    "sentinel": ("cos_threshold", "granularity", "weight_cutoff"),
    "smea": ("f",),
    "trimmed_mean": ("f", "guf_alpha", "own_candidate", "rho", "rho_central"),
    "ubar": ("alpha", "granularity", "loss_sample", "rho"),
    "zeno": ("f", "keep", "rho"),
}

#: every pre-aggregation step (defense.pre) a config can name -> the parameters it takes
PRE_STEP_PARAMS: dict[str, tuple[str, ...]] = {
    "arc": ("f",),
    "bucketing": ("s", "seed"),
    "nnm": ("f",),
}

#: every attack (byzantine.attack) a config can name -> the parameters it takes
ATTACK_PARAMS: dict[str, tuple[str, ...]] = {
    "alie": ("interval", "start_round", "z", "z_rule"),
    "alie_backdoor": (
        "alpha",
        "batch_size",
        "epochs",
        "fraction",
        "from_mu",
        "interval",
        "lr",
        "samples",
        "start_round",
        "target",
        "trigger_position",
        "trigger_size",
        "trigger_value",
        "z",
        "z_rule",
    ),
    "back_gradient": (
        "flip",
        "fraction",
        "interval",
        "iterations",
        "lr",
        "points",
        "start_round",
        "step",
        "unroll",
        "validation",
    ),
    "backdoor": (
        "boost",
        "fraction",
        "interval",
        "start_round",
        "target",
        "trigger_position",
        "trigger_size",
        "trigger_value",
    ),
    "backdoor_replacement": (
        "eta",
        "fraction",
        "interval",
        "start_round",
        "target",
        "trigger_position",
        "trigger_size",
        "trigger_value",
    ),
    "bit_flip": ("bits", "fraction", "interval", "start_round"),
    "dba": (
        "boost",
        "fraction",
        "interval",
        "parts",
        "start_round",
        "target",
        "trigger_position",
        "trigger_size",
        "trigger_value",
    ),
    "deadline_edge": ("at", "interval", "start_round"),
    "flood": ("copies", "interval", "start_round"),
    "gaussian": ("draw", "interval", "mean", "seed", "sigma", "start_round"),
    "inf": ("interval", "start_round", "value"),
    "ipm": ("epsilon", "interval", "start_round"),
    "krum_attack": ("interval", "reference", "start_round", "tolerance"),
    "label_flip": ("fraction", "interval", "mode", "source", "start_round", "target"),
    "max": ("interval", "start_round"),
    "mhamdi": ("coordinates", "factor", "interval", "max_factor", "search_steps", "start_round"),
    "mimic": ("epsilon", "interval", "start_round"),
    "none": ("interval", "start_round"),
    "scaling": (
        "backdoor",
        "fraction",
        "interval",
        "scale",
        "start_round",
        "target",
        "trigger_position",
        "trigger_size",
        "trigger_value",
    ),
    "sign_flip": ("interval", "of", "scale", "start_round"),
    "withhold": ("fraction", "interval", "start_round"),
}


def closest(word: str, choices: Iterable[str]) -> str | None:
    """The choice nearest to ``word`` in spelling (difflib), or None when none is near."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


def _hint(word: str, choices: Iterable[str]) -> str:
    near = closest(word, choices)
    return f" (did you mean {near!r}?)" if near else ""


def unknown_name(field: str, what: str, name: str, choices: Sequence[str]) -> str:
    """``defense.name='norm_clp': unknown defense (did you mean 'norm_clip'?); choose one
    of ...``."""
    return f"{field}={name!r}: unknown {what}{_hint(name, choices)}; choose one of {', '.join(sorted(choices))}"


def unknown_parameter(path: str, what: str, name: str, key: str, valid: Iterable[str]) -> str:
    """``defense.params.tauu: unknown parameter of defense 'norm_clip' (did you mean
    'tau'?); valid parameters: tau``: ``path`` is where the parameters sit in the config."""
    valid = sorted(valid)
    return (
        f"{path}.{key}: unknown parameter {key!r} of {what} {name!r}{_hint(key, valid)}; "
        f"valid parameters: {', '.join(valid) or 'none'}"
    )


def _check(
    table: Mapping[str, tuple[str, ...]], field: str, what: str, name: str, params: Mapping[str, Any], path: str
) -> str | None:
    if name not in table:
        return unknown_name(field, what, name, list(table))
    for key in sorted(params):
        if key not in table[name]:
            return unknown_parameter(path, what, name, key, table[name])
    return None


def unknown_in(
    defense: str,
    defense_params: Mapping[str, Any],
    pre: Sequence[str],
    pre_params: Mapping[str, Any],
    attack: str,
    attack_params: Mapping[str, Any],
) -> str | None:
    """The message for the first unknown name or parameter among a config's defense, pre
    steps and attack, or None. A pre step named as the rule (or a rule as a pre step) is
    left to ``peer/defenses/compose.py``, which says how to write the chain."""
    if defense not in PRE_STEP_PARAMS:
        found = _check(DEFENSE_PARAMS, "defense.name", "defense", defense, defense_params, "defense.params")
        if found:
            return found
    for step in pre:
        if step in DEFENSE_PARAMS:
            continue
        if step not in PRE_STEP_PARAMS:
            return unknown_name("defense.pre", "pre-aggregation step", step, list(PRE_STEP_PARAMS))
        step_params = pre_params.get(step, {})
        if isinstance(step_params, Mapping):
            found = _check(
                PRE_STEP_PARAMS,
                "defense.pre",
                "pre-aggregation step",
                step,
                step_params,
                f"defense.pre_params.{step}",
            )
            if found:
                return found
    return _check(ATTACK_PARAMS, "byzantine.attack", "attack", attack, attack_params, "byzantine.params")
