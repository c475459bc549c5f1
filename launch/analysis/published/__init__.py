"""Results as code: the measured tables of the docs, rendered from committed result files.

Every table of measured numbers in the docs is the output of three steps, each one command:

1. **run** a shipped sweep file (``byzemu sweep configs/sweeps/X.toml --out runs/X``;
   resumable, so an interrupted sweep goes on where it stopped);
2. **collect** the sweep's results folder into a small committed summary
   (``byzemu publish collect runs/X results/X``): ``runs.csv`` (one row per run: the cell's
   axis values, seed, final and best honest metrics, the peers' final model digests),
   ``curves.csv`` (honest metrics at every evaluation round) and ``provenance.json`` (the
   commits, platforms and times that produced the runs; :mod:`protocol.provenance`);
3. **render** the tables into the docs (``byzemu publish render``): each table sits between
   ``<!-- byzemu:table configs/tables/T.toml -->`` and ``<!-- byzemu:end -->`` and is replaced
   by what its spec file ``configs/tables/T.toml`` says (rows, columns, metric, format, the
   paper's numbers to print beside), with one provenance line and the commands that
   regenerate it. ``byzemu publish check`` (and the test suite) fails when a table in the
   docs is not what its results render to, so no number is typed by hand or left stale.

The render step needs no training: a fresh clone regenerates every table from the committed
``results/`` folders. Spec format: docs/EXPERIMENTS.md, *Results as code*.
"""

from launch.analysis.published.collect import (
    all_peers_accuracy,
    candidates_mean,
    collect,
    combine_provenance,
    cpu_per_round,
    final_digest,
    late_per_round,
    round_s_median,
    round_s_min,
    run_row,
)
from launch.analysis.published.common import (
    CONFIG_FIELDS,
    CURVE_FIELDS,
    PROJECT_ROOT,
    RUN_FIELDS,
    PublishError,
    read_csv,
)
from launch.analysis.published.drift import DRIFT_FILE, Drift, DriftCell, drift_cells, rerun_cell
from launch.analysis.published.render import (
    BEGIN,
    END,
    doc_pages,
    provenance_line,
    regenerate_commands,
    render_docs,
    render_page,
    render_table,
    specs_in_docs,
    table_sweeps,
)
from launch.analysis.published.specs import Metric, TableSpec, load_spec

__all__ = [
    "BEGIN",
    "CONFIG_FIELDS",
    "CURVE_FIELDS",
    "DRIFT_FILE",
    "END",
    "PROJECT_ROOT",
    "RUN_FIELDS",
    "Drift",
    "DriftCell",
    "Metric",
    "PublishError",
    "TableSpec",
    "collect",
    "combine_provenance",
    "doc_pages",
    "drift_cells",
    "cpu_per_round",
    "all_peers_accuracy",
    "candidates_mean",
    "late_per_round",
    "round_s_median",
    "round_s_min",
    "final_digest",
    "load_spec",
    "provenance_line",
    "read_csv",
    "regenerate_commands",
    "render_docs",
    "render_page",
    "render_table",
    "rerun_cell",
    "run_row",
    "specs_in_docs",
    "table_sweeps",
]
