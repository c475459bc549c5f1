"""Tests for protocol.config: schema, TOML loading, --set overrides, checks, to_toml."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest

from protocol import config as c
from protocol.config import ConfigError, RunConfig


def _write(tmp_path: Path, text: str, name: str = "run.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- defaults


def test_empty_file_loads_the_documented_defaults(tmp_path: Path) -> None:
    cfg = c.load(_write(tmp_path, ""))

    assert (cfg.nodes, cfg.rounds, cfg.seed) == (16, 30, 0)
    assert (cfg.topology.kind, cfg.topology.degree) == ("regular", 3)
    assert (cfg.chunks.count, cfg.chunks.per_neighbor) == (8, 4)
    assert (cfg.defense.name, cfg.byzantine.attack) == ("cdl", "none")
    assert cfg.train.lr == 0.05


def test_default_data_root_is_relative_to_the_config_folder(tmp_path: Path) -> None:
    cfg = c.load(_write(tmp_path, ""))

    assert cfg.data.root == str((tmp_path / "data" / "mnist").resolve())


def test_from_dict_of_empty_dict_equals_dataclass_defaults() -> None:
    assert c.from_dict({}) == RunConfig()


# ----------------------------------------------------------------------------- schema errors


def test_unknown_nested_field_names_the_dotted_field() -> None:
    with pytest.raises(ConfigError, match=r"^train\.lrr: unknown field"):
        c.from_dict({"train": {"lrr": 0.1}})


def test_unknown_field_message_lists_the_valid_fields_of_that_table() -> None:
    with pytest.raises(ConfigError) as exc:
        c.from_dict({"train": {"lrr": 0.1}})

    assert (
        "batch_size, device, device_map, local_epochs, local_steps, lr, lr_fading, lr_schedule, lr_step_epochs, "
        "lr_step_gamma, momentum, weight_decay" in str(exc.value)
    )


def test_unknown_top_level_field_has_no_leading_dot() -> None:
    with pytest.raises(ConfigError, match=r"^nodez: unknown field"):
        c.from_dict({"nodez": 3})


def test_string_for_a_float_field_is_rejected_with_the_field_name() -> None:
    with pytest.raises(ConfigError, match=r"^train\.lr: expected a number, got 'fast'$"):
        c.from_dict({"train": {"lr": "fast"}})


def test_bool_is_not_accepted_as_an_integer() -> None:
    with pytest.raises(ConfigError, match=r"^nodes: expected an integer"):
        c.from_dict({"nodes": True})


def test_bool_is_not_accepted_as_a_number() -> None:
    with pytest.raises(ConfigError, match=r"^train\.lr: expected a number"):
        c.from_dict({"train": {"lr": False}})


def test_float_is_not_accepted_as_an_integer() -> None:
    with pytest.raises(ConfigError, match=r"^rounds: expected an integer, got 2\.5"):
        c.from_dict({"rounds": 2.5})


def test_int_widens_to_float() -> None:
    cfg = c.from_dict({"train": {"lr": 1}})

    assert cfg.train.lr == 1.0 and type(cfg.train.lr) is float


def test_list_items_are_checked_with_their_index() -> None:
    with pytest.raises(ConfigError, match=r"^byzantine\.nodes\[1\]: expected an integer"):
        c.from_dict({"byzantine": {"nodes": [1, "x"]}})


def test_scalar_where_a_table_is_expected_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^topology: expected a table, got 3"):
        c.from_dict({"topology": 3})


def test_scalar_data_table_in_a_file_is_a_config_error(tmp_path: Path) -> None:
    # Regression: load() used to probe data.root with `in` on the raw value (TypeError).
    path = _write(tmp_path, "data = 3\n")

    with pytest.raises(ConfigError, match=r"^data: expected a table, got 3"):
        c.load(path)


# ----------------------------------------------------------------------------- --set


def test_set_overrides_parse_toml_values_and_bare_strings(tmp_path: Path) -> None:
    path = _write(tmp_path, "nodes = 5\n[train]\nlr = 0.5\n")

    cfg = c.load(path, ["train.lr=0.1", "topology.kind=ring", "byzantine.nodes=[1,2]"])

    assert cfg.train.lr == 0.1
    assert cfg.topology.kind == "ring"
    assert cfg.byzantine.nodes == [1, 2]
    assert cfg.nodes == 5  # untouched file value survives


def test_set_keeps_sibling_fields_of_the_same_table(tmp_path: Path) -> None:
    path = _write(tmp_path, "[train]\nlr = 0.5\nbatch_size = 7\n")

    cfg = c.load(path, ["train.lr=0.1"])

    assert cfg.train.batch_size == 7


def test_parse_value_quoted_string_and_bare_string_agree() -> None:
    assert c.parse_value('"ring"') == "ring"
    assert c.parse_value("ring") == "ring"


def test_parse_value_reads_toml_scalars() -> None:
    assert c.parse_value("3") == 3 and type(c.parse_value("3")) is int
    assert c.parse_value("true") is True
    assert c.parse_value("{sigma = 2.0}") == {"sigma": 2.0}


def test_set_without_equals_sign_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"expected KEY=VALUE"):
        c.apply_override({}, "train.lr")


def test_set_with_empty_path_component_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"empty field name"):
        c.apply_override({}, "train..lr=1")


def test_set_of_mistyped_value_reports_the_dotted_field(tmp_path: Path) -> None:
    path = _write(tmp_path, "")

    with pytest.raises(ConfigError, match=r"^train\.lr: expected a number, got 'fast'$"):
        c.load(path, ["train.lr=fast"])


def test_set_into_params_merges_with_file_params(tmp_path: Path) -> None:
    path = _write(tmp_path, '[byzantine]\nattack = "gaussian"\nparams = {sigma = 2.0}\n')

    cfg = c.load(path, ["byzantine.params.mean=1.5"])

    assert cfg.byzantine.params == {"sigma": 2.0, "mean": 1.5}


# ----------------------------------------------------------------------------- relative paths


def test_relative_root_in_file_resolves_against_the_file_folder(tmp_path: Path) -> None:
    sub = tmp_path / "cfgs"
    sub.mkdir()
    path = _write(sub, '[data]\nroot = "../mnist"\n')

    cfg = c.load(path)

    assert cfg.data.root == str((tmp_path / "mnist").resolve())


def test_relative_root_via_set_resolves_against_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = tmp_path / "cfgs"
    sub.mkdir()
    path = _write(sub, "")
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)

    cfg = c.load(path, ["data.root=here"])

    assert cfg.data.root == str((workdir / "here").resolve())


def test_absolute_root_is_kept_as_is(tmp_path: Path) -> None:
    target = (tmp_path / "abs").resolve()
    path = _write(tmp_path, f'[data]\nroot = "{target.as_posix()}"\n')

    assert c.load(path).data.root == target.as_posix()


def test_resolve_paths_false_keeps_relative_root(tmp_path: Path) -> None:
    path = _write(tmp_path, '[data]\nroot = "rel"\n')

    assert c.load(path, resolve_paths=False).data.root == "rel"


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config"):
        c.load(tmp_path / "nope.toml")


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "nodes = = 3\n")

    with pytest.raises(ConfigError, match=r"not valid TOML"):
        c.load(path)


# ----------------------------------------------------------------------------- range checks


def test_per_neighbor_equal_to_count_is_rejected_as_whole_model() -> None:
    with pytest.raises(ConfigError, match=r"^chunks\.per_neighbor=8: .*whole model"):
        c.from_dict({"chunks": {"count": 8, "per_neighbor": 8}})


def test_per_neighbor_above_count_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"whole model"):
        c.from_dict({"chunks": {"count": 4, "per_neighbor": 9}})


def test_per_neighbor_one_below_count_is_accepted() -> None:
    cfg = c.from_dict({"chunks": {"count": 4, "per_neighbor": 3}})

    assert cfg.chunks.per_neighbor == 3


def test_chunk_timeout_equal_to_round_timeout_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^runtime\.chunk_timeout=10\.0 must be below"):
        c.from_dict({"runtime": {"chunk_timeout": 10, "round_timeout": 10}})


def test_chunk_timeout_above_round_timeout_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"runtime\.chunk_timeout"):
        c.from_dict({"runtime": {"chunk_timeout": 20, "round_timeout": 10}})


def test_single_node_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^nodes=1: need at least 2 peers"):
        c.from_dict({"nodes": 1})


def test_momentum_of_one_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^train\.momentum=1\.0"):
        c.from_dict({"train": {"momentum": 1}})


def test_convergence_fraction_zero_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"^eval\.convergence_fraction"):
        c.from_dict({"eval": {"convergence_fraction": 0}})


# ----------------------------------------------------------------------------- to_toml


def _nontrivial_config() -> RunConfig:
    return c.from_dict(
        {
            "name": 'quote " and back\\slash',
            "seed": 7,
            "topology": {"kind": "ring"},
            "defense": {"name": "cdl", "params": {"own_weight": 0.25}},
            "byzantine": {
                "count": 2,
                "nodes": [3, 1],
                "attack": "gaussian",
                "params": {"sigma": 2.5, "start_round": 3},
            },
            "data": {"root": "/abs/data"},
        }
    )


def test_to_toml_round_trips_through_tomllib() -> None:
    data = _nontrivial_config().to_dict()

    assert tomllib.loads(c.to_toml(data)) == data


def test_to_toml_keeps_params_as_tables() -> None:
    data = _nontrivial_config().to_dict()

    loaded = tomllib.loads(c.to_toml(data))

    assert loaded["defense"]["params"] == {"own_weight": 0.25}
    assert loaded["byzantine"]["params"] == {"sigma": 2.5, "start_round": 3}


def test_to_toml_output_reloads_to_an_equal_config() -> None:
    cfg = _nontrivial_config()

    assert c.from_dict(tomllib.loads(c.to_toml(cfg.to_dict()))) == cfg


def test_to_toml_escapes_control_characters_in_strings() -> None:
    # Regression: a newline in a string produced TOML that tomllib refused to read.
    data = {"name": "line1\nline2\ttab\x7f\x00"}

    assert tomllib.loads(c.to_toml(data)) == data


def test_to_dict_is_a_deep_copy() -> None:
    cfg = RunConfig()

    cfg.to_dict()["train"]["lr"] = 99.0

    assert cfg.train.lr == 0.05


# ----------------------------------------------------------------------------- eval_round


def test_eval_round_every_five_with_twelve_rounds() -> None:
    cfg = dataclasses.replace(RunConfig(), rounds=12, eval=c.EvalConfig(every=5))

    assert [t for t in range(1, 13) if cfg.eval_round(t)] == [5, 10, 12]


def test_eval_round_every_one_evaluates_each_round() -> None:
    cfg = dataclasses.replace(RunConfig(), rounds=3, eval=c.EvalConfig(every=1))

    assert [t for t in range(1, 4) if cfg.eval_round(t)] == [1, 2, 3]


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
