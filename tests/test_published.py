"""Results as code (launch/analysis/published.py): a sweep's finished runs are collected
into a small results folder, a table spec renders them into a docs page between markers,
and a docs table that no longer equals its rendering is found.

The runs are real (in process through the reference driver, which
tests/test_reference_equivalence.py holds bit-identical to a cluster run) and the expected
cells are computed from each run's own summary.json, so a wrong row, column, reduction or
format changes the asserted text. The last tests hold the repository itself to it: every
table block in the docs equals what its committed results render to.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from launch.analysis import published
from launch.run.reference import run_reference
from launch.sweeps.sweepfile import load_sweep
from tests.support.runs import small_config

SWEEP = """base = "base.toml"
repeats = 2

[axes]
"byzantine.attack" = ["label_flip"]
"defense.name" = ["cdl", "median"]
"""

GRID_SPEC = """results = "results/tiny"
sweep = "sweeps/tiny.toml"
layout = "grid"
rows = "defense.name"
columns = "byzantine.attack"

[metric]
name = "acc_mean"
scale = 100
digits = 2

[labels]
median = "`median`"

[published]
label = "paper"
digits = 1
[published.values.cdl]
label_flip = 50
"""

LIST_SPEC = """results = "results/tiny"
sweep = "sweeps/tiny.toml"
layout = "list"
rows = ["defense.name"]

[[metrics]]
name = "acc_mean"
label = "honest accuracy"
digits = 4
std = true

[[metrics]]
name = "acc_worst"
label = "worst"
reduce = "min"
digits = 3
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder with a finished 2 x 2 sweep (defense x repeat), its results
    collected under results/tiny, and both table specs."""
    root = tmp_path_factory.mktemp("project")
    (root / "sweeps").mkdir()
    (root / "sweeps" / "base.toml").write_text(
        small_config(
            "tiny",
            seed=3,
            nodes=5,
            rounds=2,
            byzantine={"count": 1, "attack": "label_flip", "placement": "random"},
            data={"synthetic_size": 120},
        )
    )
    (root / "sweeps" / "tiny.toml").write_text(SWEEP)
    sweep = load_sweep(root / "sweeps" / "tiny.toml")
    out = root / "runs"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps(sweep.to_json()))
    for run in sweep.runs:
        run_reference(run.cfg, out / run.rel_dir)
    published.collect(out, root / "results" / "tiny", sweep_file="sweeps/tiny.toml")
    (root / "tables").mkdir()
    (root / "tables" / "grid.toml").write_text(GRID_SPEC)
    (root / "tables" / "list.toml").write_text(LIST_SPEC)
    return root


def _summaries(root: Path, defense: str) -> list[dict]:
    cell = f"byzantine.attack=label_flip__defense.name={defense}"
    return [json.loads((root / "runs" / cell / f"rep{r}" / "summary.json").read_text()) for r in (0, 1)]


def test_collect_writes_one_row_per_run_with_axes_and_provenance(tiny: Path) -> None:
    # Act
    with open(tiny / "results" / "tiny" / "runs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    prov = json.loads((tiny / "results" / "tiny" / "provenance.json").read_text())

    # Assert: 2 cells x 2 repeats, seeds 3 and 4, the final accuracy exactly as recorded
    assert [(r["defense.name"], r["rep"], r["seed"]) for r in rows] == [
        ("cdl", "0", "3"),
        ("cdl", "1", "4"),
        ("median", "0", "3"),
        ("median", "1", "4"),
    ]
    cdl = _summaries(tiny, "cdl")
    assert float(rows[0]["acc_mean"]) == cdl[0]["final_accuracy"]["mean"]
    assert float(rows[1]["acc_worst"]) == cdl[1]["final_accuracy"]["worst"]
    assert len(rows[0]["digest"]) == 16 and rows[0]["digest"] != rows[1]["digest"]
    assert (
        prov["runs"] == 4 and prov["sweep"] == "sweeps/tiny.toml" and prov["axes"] == []
    )  # both axes are among CONFIG_FIELDS
    assert list(prov["platforms"].values()) == [4]
    with open(tiny / "results" / "tiny" / "curves.csv", newline="") as fh:
        curves = list(csv.DictReader(fh))
    assert [(c["cell"], c["round"]) for c in curves][:3] == [
        ("byzantine.attack=label_flip__defense.name=cdl", "1"),
        ("byzantine.attack=label_flip__defense.name=cdl", "2"),
        ("byzantine.attack=label_flip__defense.name=cdl", "1"),
    ]


def test_cpu_per_round_is_the_mean_over_peer_rounds_of_one_role() -> None:
    # Arrange: two rounds; peer 2 is Byzantine (its role carries the attack), peer 3 has no timing
    def peer(role: str, cpu: float | None) -> dict:
        return {"role": role, "timing": {} if cpu is None else {"round_cpu_s": cpu}}

    records = [
        {"peers": {"0": peer("honest", 0.1), "1": peer("honest", 0.3), "2": peer("byzantine:alie", 2.0)}},
        {"peers": {"0": peer("honest", 0.2), "1": peer("honest", 0.2), "3": peer("honest", None)}},
    ]

    # Act / Assert: (0.1 + 0.3 + 0.2 + 0.2) / 4 and the one Byzantine peer-round
    assert published.cpu_per_round(records, "honest") == pytest.approx(0.2)
    assert published.cpu_per_round(records, "byzantine") == 2.0
    assert published.cpu_per_round(records[1:], "byzantine") is None


def test_round_time_candidates_and_late_chunks_per_run() -> None:
    # Arrange: three rounds; peer 2 is Byzantine (its candidates and late chunks do not count)
    def peer(role: str, candidates: list[int], late: dict[str, int]) -> dict:
        return {"role": role, "metrics": {"candidates": candidates}, "traffic": {"late_from": late}}

    records = [
        {"round_s": 0.5, "peers": {"0": peer("honest", [2, 1], {}), "2": peer("byzantine:x", [9, 9], {"0": 4})}},
        {"round_s": 0.2, "peers": {"0": peer("honest", [0, 3], {"2": 2, "1": 1}), "1": peer("honest", [2, 2], {})}},
        {"round_s": 0.9, "peers": {"1": peer("honest", [], {"0": 1})}},
    ]

    # Act / Assert: median of 0.2, 0.5, 0.9; (2+1+0+3+2+2) / 6; (2 + 1 + 1) late over 3 rounds
    assert published.round_s_median(records) == 0.5
    assert published.round_s_median(records[:2]) == pytest.approx(0.35)
    assert published.round_s_min(records) == 0.2 and published.round_s_min([]) is None
    assert published.candidates_mean(records) == pytest.approx(10 / 6)
    assert published.late_per_round(records) == pytest.approx(4 / 3)
    assert published.candidates_mean(records[2:]) is None
    assert published.round_s_median([]) is None and published.late_per_round([]) is None


def test_all_peers_accuracy_takes_every_peer_of_the_last_evaluation_round() -> None:
    # Arrange: two evaluation rounds; in the last, two honest peers and one Byzantine peer
    # (eval.byzantine = true) report an accuracy, one Byzantine peer reports none
    def peer(role: str, acc: float | None) -> dict:
        return {"role": role, "metrics": {} if acc is None else {"test_accuracy": acc}}

    evals = [
        {"peers": {"0": peer("honest", 0.1), "1": peer("honest", 0.1)}},
        {
            "peers": {
                "0": peer("honest", 0.9),
                "1": peer("honest", 0.8),
                "2": peer("byzantine:x", 0.1),
                "3": peer("byzantine:x", None),
            }
        },
    ]

    # Act / Assert: (0.9 + 0.8 + 0.1) / 3 and the least
    assert published.all_peers_accuracy(evals) == (pytest.approx(0.6), 0.1)
    assert published.all_peers_accuracy([]) == (None, None)
    assert published.all_peers_accuracy([{"peers": {"2": peer("byzantine:x", None)}}]) == (None, None)


def test_grid_table_is_mean_over_repeats_beside_the_published_number(tiny: Path) -> None:
    # Arrange
    spec = published.load_spec(tiny / "tables" / "grid.toml", root=tiny)
    cdl = sum(s["final_accuracy"]["mean"] for s in _summaries(tiny, "cdl")) / 2
    median = sum(s["final_accuracy"]["mean"] for s in _summaries(tiny, "median")) / 2

    # Act
    lines = published.render_table(spec).splitlines()

    # Assert
    assert lines[:4] == [
        "| defense.name | label_flip | label_flip (paper) |",
        "|---|---|---|",
        f"| cdl | {cdl * 100:.2f} | 50.0 |",
        f"| `median` | {median * 100:.2f} |  |",
    ]
    assert lines[5].startswith("<sub>Measured: commit ")
    assert "4 run(s)" in lines[5] and "`byzemu publish collect runs/tiny results/tiny`" in lines[5]


def test_list_table_gives_mean_with_std_and_worst_over_repeats(tiny: Path) -> None:
    # Arrange
    spec = published.load_spec(tiny / "tables" / "list.toml", root=tiny)
    runs = _summaries(tiny, "median")
    means = [s["final_accuracy"]["mean"] for s in runs]
    mean = sum(means) / 2
    std = abs(means[0] - means[1]) / 2  # population std of two values, as byzemu report
    worst = min(s["final_accuracy"]["worst"] for s in runs)

    # Act
    lines = published.render_table(spec).splitlines()

    # Assert
    assert lines[0] == "| defense.name | runs | honest accuracy | worst |"
    assert lines[3] == f"| median | 2 | {mean:.4f} ± {std:.4f} | {worst:.3f} |"


def test_order_labels_puts_rows_in_the_order_of_the_labels(tiny: Path) -> None:
    # Arrange: the runs show cdl first; the labels list median first
    spec_path = tiny / "tables" / "ordered.toml"
    spec_path.write_text('order = "labels"\n' + LIST_SPEC + '\n[labels]\nmedian = "`median`"\ncdl = "`cdl`"\n')
    spec = published.load_spec(spec_path, root=tiny)
    plain = published.render_table(published.load_spec(tiny / "tables" / "list.toml", root=tiny)).splitlines()

    # Act
    lines = published.render_table(spec).splitlines()

    # Assert
    assert [line.split(" | ")[0] for line in plain[2:4]] == ["| cdl", "| median"]
    assert [line.split(" | ")[0] for line in lines[2:4]] == ["| `median`", "| `cdl`"]
    assert lines[2].split(" | ")[1:] == plain[3].split(" | ")[1:]


def test_a_spec_that_extends_another_restates_only_what_differs(tiny: Path) -> None:
    # Arrange: the grid spec in another "setting": one label added, the published label and
    # the cdl row replaced, a median row added, the rest (rows, columns, metric) inherited
    child = tiny / "tables" / "child.toml"
    child.write_text(
        'extends = "grid.toml"\n[labels]\ncdl = "`cdl`"\n[published]\nlabel = "other paper"\n'
        "[published.values.cdl]\nlabel_flip = 60\n[published.values.median]\nlabel_flip = 70\n"
    )
    parent = published.render_table(published.load_spec(tiny / "tables" / "grid.toml", root=tiny)).splitlines()

    # Act
    spec = published.load_spec(child, root=tiny)
    lines = published.render_table(spec).splitlines()

    # Assert
    assert (spec.layout, spec.rows, spec.columns, spec.published_digits) == (
        "grid",
        ("defense.name",),
        "byzantine.attack",
        1,
    )
    assert spec.labels == {"median": "`median`", "cdl": "`cdl`"}
    assert lines[0] == "| defense.name | label_flip | label_flip (other paper) |"
    assert lines[2] == parent[2].replace("| cdl |", "| `cdl` |").replace("| 50.0 |", "| 60.0 |")
    assert lines[3] == parent[3].removesuffix("  |") + " 70.0 |"


def _seed_split_table(tiny: Path, name: str, published_values: str) -> tuple[list[str], list[str]]:
    """The list spec with its rows split by seed (one row per defense and repeat) and the
    given ``[published.values]`` rows, rendered: (the seeds, the table's row lines)."""
    seeds = sorted({r["seed"] for r in published.read_csv(tiny / "results" / "tiny" / "runs.csv")})
    spec = tiny / "tables" / f"{name}.toml"
    text = LIST_SPEC.replace('rows = ["defense.name"]', 'rows = ["defense.name", "seed"]')
    spec.write_text(text + "[published]\n" + published_values.format(s0=seeds[0], s1=seeds[1]))
    lines = published.render_table(published.load_spec(spec, root=tiny)).splitlines()
    return seeds, lines[2:6]


def test_a_published_row_keyed_by_the_first_axes_stands_beside_each_row_that_splits_it(tiny: Path) -> None:
    # Arrange / Act: the paper's number keyed by the defense alone, one value for the cdl
    # key with the seed too
    seeds, rows = _seed_split_table(
        tiny,
        "split",
        '[published.values.median]\n"honest accuracy" = 0.5\n[published.values."cdl/{s1}"]\n"honest accuracy" = 0.25\n',
    )

    # Assert: one row per (defense, seed), each median row with the defense's number, only
    # the cdl row of that seed with its own
    assert len(seeds) == 2
    assert [line.split(" | ")[1] for line in rows] == seeds * 2
    assert [line.split(" | ")[-1] for line in rows] == [" |", "0.25 |", "0.5 |", "0.5 |"]


def test_a_star_in_a_published_key_stands_for_any_value_of_that_axis(tiny: Path) -> None:
    # Arrange / Act: the paper's numbers keyed by a defense alone (a prefix), by any
    # defense at the second seed, and by cdl at any seed
    seeds, rows = _seed_split_table(
        tiny,
        "star",
        '[published.values.median]\n"honest accuracy" = 0.5\n'
        '[published.values."*/{s1}"]\n"honest accuracy" = 0.25\n'
        '[published.values."cdl/*"]\n"honest accuracy" = 0.3\n',
    )

    # Assert: cdl takes "cdl/*" at both seeds (at the second, "cdl/*" and "*/seed" tie on
    # length and stars, and the star further right wins); median takes "*/seed" at the
    # second seed (a full-length key beats the prefix) and the prefix at the first
    assert [line.split(" | ")[:2] for line in rows] == [
        ["| cdl", seeds[0]],
        ["| cdl", seeds[1]],
        ["| median", seeds[0]],
        ["| median", seeds[1]],
    ]
    assert [line.split(" | ")[-1] for line in rows] == ["0.3 |", "0.3 |", "0.5 |", "0.25 |"]


def test_index_credits_every_sweep_a_table_was_collected_from(tiny: Path) -> None:
    # Arrange: a table collected from two sweeps (its commands name both) and a third sweep never run
    (tiny / "sweeps" / "control.toml").write_text('extends = "tiny.toml"\nrepeats = 1\n')
    (tiny / "sweeps" / "unrun.toml").write_text('extends = "tiny.toml"\nrepeats = 3\n')
    (tiny / "tables" / "both.toml").write_text(
        'commands = ["byzemu sweep sweeps/tiny.toml --out runs/tiny", '
        '"byzemu sweep sweeps/control.toml --out runs/control", '
        '"byzemu publish collect runs/tiny runs/control results/tiny"]\n' + LIST_SPEC
    )
    (tiny / "tables" / "index.toml").write_text(
        'layout = "index"\n[[paper]]\nname = "Tiny"\n'
        'sweeps = ["sweeps/tiny.toml", "sweeps/control.toml", "sweeps/unrun.toml"]\ntables = ["tables/both.toml"]\n'
    )
    both = published.load_spec(tiny / "tables" / "both.toml", root=tiny)

    # Act
    rows = published.render_table(published.load_spec(tiny / "tables" / "index.toml", root=tiny)).splitlines()[2:5]

    # Assert
    assert published.table_sweeps(both) == ["sweeps/tiny.toml", "sweeps/control.toml"]
    assert [r.split(" | ")[1:3] for r in rows] == [
        ["`sweeps/tiny.toml`", "4"],
        ["`sweeps/control.toml`", "2"],
        ["`sweeps/unrun.toml`", "6"],
    ]
    assert all("4 run(s) of 2 sweep files together" in r and "table `both.toml`" in r for r in rows[:2])
    assert "not run here" in rows[2]


def test_index_credits_sweeps_chained_in_one_command(tiny: Path) -> None:
    # Arrange: the two sweeps in one command, joined by ";" (as the shipped union tables write them)
    (tiny / "sweeps" / "control.toml").write_text('extends = "tiny.toml"\nrepeats = 1\n')
    (tiny / "tables" / "both.toml").write_text(
        'commands = ["byzemu sweep sweeps/tiny.toml --out runs/tiny; byzemu sweep sweeps/control.toml --out '
        'runs/control", "byzemu publish collect runs/tiny runs/control results/tiny"]\n' + LIST_SPEC
    )

    # Act
    found = published.table_sweeps(published.load_spec(tiny / "tables" / "both.toml", root=tiny))

    # Assert
    assert found == ["sweeps/tiny.toml", "sweeps/control.toml"]


def test_render_replaces_a_block_and_finds_a_stale_one(tiny: Path) -> None:
    # Arrange: a page whose block holds a hand-typed table
    page = tiny / "page.md"
    page.write_text("intro\n\n<!-- byzemu:table tables/grid.toml -->\n| typed | 99 |\n<!-- byzemu:end -->\n\nafter\n")

    # Act
    stale = published.render_docs([page], write=False, root=tiny)
    published.render_docs([page], root=tiny)
    again = published.render_docs([page], write=False, root=tiny)

    # Assert: found stale, replaced by the rendering, then stable; text outside kept
    assert stale == [page] and again == []
    text = page.read_text()
    assert "| typed | 99 |" not in text and "| defense.name | label_flip |" in text
    assert text.startswith("intro\n\n<!-- byzemu:table tables/grid.toml -->\n| defense.name")
    assert text.endswith("<!-- byzemu:end -->\n\nafter\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'results = "r"\nsweep = "s"\nlayout = "pie"\nrows = "a"\n',
            "layout must be 'grid', 'list', 'curves' or 'index'",
        ),
        (
            'results = "r"\nsweep = "s"\nlayout = "list"\nrows = "a"\n[[metrics]]\nname = "accuracy"\n',
            "metric name must be one of",
        ),
        ('results = "r"\nlayout = "list"\nrows = "a"\n', "missing 'sweep'"),
        ('results = "r"\nsweep = "s"\nlayout = "grid"\nrows = "a"\ncolour = 1\n', "unknown key(s) ['colour']"),
        (
            'results = "r"\nsweep = "s"\nlayout = "list"\nrows = "a"\norder = "name"\n[[metrics]]\nname = "acc_mean"\n',
            "order must be 'runs'",
        ),
        ('extends = "bad.toml"\n', "makes a loop"),
        ('extends = "missing.toml"\n', "extends='missing.toml': no such file"),
    ],
)
def test_a_bad_spec_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)

    with pytest.raises(published.PublishError) as info:
        published.load_spec(path, root=tmp_path)

    assert message in str(info.value) and str(path) in str(info.value)


def test_collect_refuses_an_unfinished_run(tmp_path: Path) -> None:
    # Arrange: a run folder whose summary records fewer rounds than the config
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "summary.json").write_text(json.dumps({"rounds_completed": 1, "rounds": 3}))

    with pytest.raises(published.PublishError, match="not a finished run"):
        published.collect(run, tmp_path / "out")


def test_a_results_folder_carries_its_runs_into_a_new_collect(tiny: Path, tmp_path: Path) -> None:
    # Arrange: one more run (a third defense), in a sweep folder of its own
    (tmp_path / "base.toml").write_text((tiny / "sweeps" / "base.toml").read_text())
    (tmp_path / "more.toml").write_text(
        'base = "base.toml"\nrepeats = 1\n\n[axes]\n"byzantine.attack" = ["label_flip"]\n'
        '"defense.name" = ["trimmed_mean"]\n'
    )
    sweep = load_sweep(tmp_path / "more.toml")
    more = tmp_path / "runs"
    more.mkdir()
    (more / "sweep.json").write_text(json.dumps(sweep.to_json()))
    run_reference(sweep.runs[0].cfg, more / sweep.runs[0].rel_dir)
    before = tiny / "results" / "tiny"
    old = json.loads((before / "provenance.json").read_text())

    # Act: the committed results plus the new sweep folder (no run folder of the old runs)
    prov = published.collect([before, more], tmp_path / "joined")

    # Assert: the old rows and curves come first, byte for byte, then the new run's
    joined = (tmp_path / "joined" / "runs.csv").read_text().splitlines()
    assert joined[: len(old_rows := (before / "runs.csv").read_text().splitlines())] == old_rows
    assert len(joined) == len(old_rows) + 1 and ",trimmed_mean," in joined[-1]
    curves = (tmp_path / "joined" / "curves.csv").read_text().splitlines()
    assert curves[:-2] == (before / "curves.csv").read_text().splitlines()  # 2 rounds of the new run
    assert prov["runs"] == 5 and sum(prov["platforms"].values()) == 5
    assert prov["sweep"] == "sweeps/tiny.toml"  # recorded by the first folder
    assert prov["started"] == old["started"] and prov["wall_s"] > old["wall_s"]
    assert prov["example"] == old["example"]


def test_a_run_given_twice_is_refused(tiny: Path, tmp_path: Path) -> None:
    # the results folder already holds the sweep's runs: collecting both counts them twice
    with pytest.raises(published.PublishError, match="byzantine.attack=label_flip__defense.name=cdl/rep0 is in two"):
        published.collect([tiny / "results" / "tiny", tiny / "runs"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --- the repository itself -----------------------------------------------------------


def test_every_docs_table_equals_its_rendering_from_the_committed_results() -> None:
    # a failure names the page: rerun `byzemu publish render` (or collect, if results moved)
    assert published.render_docs(write=False) == []


def test_every_table_spec_is_shown_in_the_docs_and_names_a_shipped_sweep() -> None:
    specs = sorted((published.PROJECT_ROOT / "configs" / "tables").glob("*.toml"))
    shown = set(published.specs_in_docs())

    assert specs, "no table specs"
    for path in specs:
        rel = str(path.relative_to(published.PROJECT_ROOT))
        spec = published.load_spec(path)
        assert rel in shown, f"{rel} is rendered in no docs page"
        if spec.layout == "index":  # the paper index names sweep files, no results of its own
            for entry in spec.entries:
                for sweep in entry["sweeps"]:
                    assert (published.PROJECT_ROOT / sweep).is_file(), f"{rel}: sweep {sweep} is not shipped"
            continue
        assert (published.PROJECT_ROOT / spec.sweep).is_file(), f"{rel}: sweep {spec.sweep} is not shipped"
        assert (spec.results / "runs.csv").is_file(), f"{rel}: {spec.results} not collected"
        for command in spec.commands:
            for word in command.replace(";", " ").split():
                if word.startswith("configs/sweeps/") and "$" not in word:  # not a shell loop's pattern
                    assert (published.PROJECT_ROOT / word).is_file(), f"{rel}: command names {word}, not shipped"


def test_curves_spec_draws_the_png_and_links_it_relative_to_the_page(tiny: Path) -> None:
    # Arrange
    (tiny / "tables" / "curves.toml").write_text(
        'results = "results/tiny"\nsweep = "sweeps/tiny.toml"\nlayout = "curves"\nrows = []\n'
        '[figure]\nmetric = "acc_mean"\nlines = "defense.name"\nout = "docs/figures/tiny.png"\ntitle = "tiny"\n'
    )
    page = tiny / "docs" / "page.md"
    page.parent.mkdir(exist_ok=True)
    page.write_text("<!-- byzemu:table tables/curves.toml -->\n<!-- byzemu:end -->\n")

    # Act
    stale = published.render_docs([page], write=False, root=tiny)
    drawn_before_write = (tiny / "docs" / "figures" / "tiny.png").exists()
    published.render_docs([page], root=tiny)

    # Assert: checking draws nothing; rendering draws a PNG and links it from the page
    assert stale == [page] and not drawn_before_write
    assert (tiny / "docs" / "figures" / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![tiny](figures/tiny.png)" in page.read_text()
