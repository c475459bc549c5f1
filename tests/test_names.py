"""Names a config gives its attack, defense and pre steps are checked while the config
loads, before torch is imported, with the closest name suggested and parameters named by
their path in the config (``protocol/names.py``); its tables equal the registries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from peer.attacks import ATTACKS
from peer.defenses import DEFENSES, PRE_STEPS, build_defense
from peer.registry import Registry, RegistryError, keyword_parameters
from protocol import config as config_mod
from protocol.config import ConfigError
from protocol.names import ATTACK_PARAMS, DEFENSE_PARAMS, PRE_STEP_PARAMS, closest

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "configs" / "quickstart.toml"


def _table(registry: Registry) -> dict[str, tuple[str, ...]]:
    return {name: tuple(sorted(keyword_parameters(registry.get(name)))) for name in registry.names()}


@pytest.mark.parametrize(
    ("static", "registry", "var"),
    [
        (DEFENSE_PARAMS, DEFENSES, "DEFENSE_PARAMS"),
        (PRE_STEP_PARAMS, PRE_STEPS, "PRE_STEP_PARAMS"),
        (ATTACK_PARAMS, ATTACKS, "ATTACK_PARAMS"),
    ],
)
def test_static_tables_equal_the_registries(static: dict, registry: Registry, var: str) -> None:
    expected = _table(registry)

    missing = "\n".join(f"    {k!r}: {v!r}," for k, v in expected.items() if static.get(k) != v)
    assert static == expected, f"protocol/names.py {var}: add or correct these lines:\n{missing}"


def test_closest_suggests_the_nearest_spelling_and_nothing_when_none_is_near() -> None:
    assert closest("norm_clp", DEFENSE_PARAMS) == "norm_clip"
    assert closest("no-such-rule", DEFENSE_PARAMS) is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "defense.name=norm_clp",
            "defense.name='norm_clp': unknown defense (did you mean 'norm_clip'?); choose one of ",
        ),
        (
            "byzantine.attack=gausian",
            "byzantine.attack='gausian': unknown attack (did you mean 'gaussian'?); choose one of ",
        ),
        (
            'defense.pre=["nnn"]',
            "defense.pre='nnn': unknown pre-aggregation step (did you mean 'nnm'?); choose one of arc, bucketing, nnm",
        ),
        ("train.lrr=0.1", "train.lrr: unknown field (did you mean train.lr?); valid fields here are "),
    ],
)
def test_misspelt_name_is_rejected_on_load_with_the_closest_name(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        config_mod.load(QUICKSTART, [override])

    assert str(exc.value).startswith(message), str(exc.value)


def test_unknown_parameter_is_named_by_its_path_in_the_config() -> None:
    with pytest.raises(ConfigError) as exc:
        config_mod.load(QUICKSTART, ["defense.name=norm_clip", "defense.params.tauu=2.0"])

    assert str(exc.value) == (
        "defense.params.tauu: unknown parameter 'tauu' of defense 'norm_clip' (did you mean 'tau'?); "
        "valid parameters: clip_own, tau"
    )


def test_unknown_pre_step_parameter_is_named_by_its_path() -> None:
    with pytest.raises(ConfigError) as exc:
        config_mod.load(QUICKSTART, ['defense.pre=["bucketing"]', "defense.pre_params={bucketing={ss=2}}"])

    assert str(exc.value) == (
        "defense.pre_params.bucketing.ss: unknown parameter 'ss' of pre-aggregation step 'bucketing' "
        "(did you mean 's'?); valid parameters: s, seed"
    )


def test_registry_raises_the_same_message_as_the_load_check() -> None:
    with pytest.raises(ConfigError) as on_load:
        config_mod.load(QUICKSTART, ["defense.name=norm_clip", "defense.params.tauu=2.0"])
    with pytest.raises(RegistryError) as on_build:
        build_defense("norm_clip", {"tauu": 2.0})

    assert str(on_build.value) == str(on_load.value)


def test_launch_reports_a_misspelt_defense_without_importing_torch(tmp_path: Path) -> None:
    # Arrange: the CLI's launch, run in a fresh interpreter that reports whether torch got imported
    run = str(tmp_path / "run")
    script = (
        "import sys\n"
        "from launch.cli import main\n"
        "try:\n"
        f"    main(['launch', {str(QUICKSTART)!r}, '--set', 'defense.name=norm_clp', '--out', {run!r}])\n"
        "except SystemExit as exc:\n"
        "    print('exit', exc.code, 'torch' in sys.modules)\n"
    )

    # Act
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)

    # Assert: status 2, the suggestion, no torch, no run folder
    assert done.stdout.strip() == "exit 2 False", done.stdout + done.stderr
    assert "(did you mean 'norm_clip'?)" in done.stderr
    assert not (tmp_path / "run").exists()
