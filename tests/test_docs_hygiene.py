"""What a reader sees in the prose must be resolvable without our development machine or
issue tracker: no local paper file names (cite authors, title, venue, year; the full
entries are in docs/REFERENCES.md), no absolute paths of a development machine, no issue
numbers and no dated diary entries (history goes to CHANGELOG.md, measurements to
BENCHMARKS.md).

Scanned: README.md, docs/ (Markdown and the examples' comments and docstrings),
configs/ (TOML), tests/README.md, the comments and docstrings of protocol/, peer/,
coordinator/, launch/, bench/ and tests/. A hit fails with ``file:line: what: text``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from launch.analysis import published

ROOT = Path(__file__).resolve().parent.parent

#: files not yet cleaned because another branch owns them; the lead empties this list
#: after merging those branches (and then fixes what the test reports)
PENDING: list[str] = []
#: launch/tools/config_reference.py is ours and checked even while launch/** is pending
CHECKED_EVEN_IF_PENDING = ["launch/tools/config_reference.py"]

RULES: list[tuple[str, re.Pattern[str]]] = [
    ("local paper file name", re.compile(r"\b00\d_(?:[0-9a-f]{16}\b|…|\.\.\.)")),
    ("local paper number (cite authors, title, year)", re.compile(r"(?<![\w.,/$-])00[0-4](?:'s)?(?![\w.,:/-]?\d|\w)")),
    ("absolute development path", re.compile(r"(?<![\w.~-])/(?:work|root|tmp)/")),
    ("issue number", re.compile(r"\bissues? ?#?\d+\b", re.IGNORECASE)),
    ("issue reference", re.compile(r"(?<![\w&/`'\"])#\d+\b")),
    ("dated entry", re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b")),
]

PY_ROOTS = ["protocol", "peer", "coordinator", "launch", "bench", "tests", "docs/examples"]


def _pending(rel: str) -> bool:
    if rel in CHECKED_EVEN_IF_PENDING:
        return False
    return any(Path(rel).match(p) or (p.endswith("/**") and rel.startswith(p[:-2])) for p in PENDING)


def _python_prose(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every comment and docstring line in a Python file."""
    source = path.read_text()
    out: list[tuple[int, str]] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out.append((tok.start[0], tok.string))
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    first = body[0].lineno
                    out += [(first + i, line) for i, line in enumerate(body[0].value.value.splitlines())]
    return out


def _text_lines(path: Path) -> list[tuple[int, str]]:
    """The lines of a text file, less the tables rendered between ``<!-- byzemu:table ...
    -->`` and ``<!-- byzemu:end -->``: their provenance line carries the date a number was
    measured on purpose (docs/EXPERIMENTS.md, *Results as code*)."""
    out, rendered = [], False
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if published.BEGIN.match(line):
            rendered = True
        elif line == published.END:
            rendered = False
        elif not rendered:
            out.append((number, line))
    return out


def _scanned() -> list[tuple[str, list[tuple[int, str]]]]:
    files: list[Path] = [ROOT / "README.md", ROOT / "tests" / "README.md"]
    files += sorted((ROOT / "docs").rglob("*.md")) + sorted((ROOT / "configs").rglob("*.toml"))
    for folder in PY_ROOTS:
        files += sorted((ROOT / folder).rglob("*.py"))
    out = []
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        if "/.venv/" in f"/{rel}" or _pending(rel):
            continue
        out.append((rel, _python_prose(path) if path.suffix == ".py" else _text_lines(path)))
    return out


def hits() -> list[str]:
    """``file:line: rule: text`` for every line that breaks a rule."""
    found = []
    for rel, lines in _scanned():
        if rel == "tests/test_docs_hygiene.py":
            continue  # its own patterns and examples
        for number, text in lines:
            for name, pattern in RULES:
                if pattern.search(text):
                    found.append(f"{rel}:{number}: {name}: {text.strip()}")
    return found


def test_prose_cites_papers_by_name_and_keeps_no_diary() -> None:
    found = hits()
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("see 002_b98f58265f12497c.txt, Eq. 13", "local paper file name"),
        ("as 002 sets alpha = 0.5", "local paper number (cite authors, title, year)"),
        ("003's backdoor z", "local paper number (cite authors, title, year)"),
        ("/work/shared/papers/x.txt", "absolute development path"),
        ("(issue 15)", "issue number"),
        ("dropped in #16", "issue reference"),
        ("measured 2026-11-30 at 18:58", "dated entry"),
    ],
)
def test_each_rule_catches_its_example(text: str, rule: str) -> None:
    assert [name for name, pattern in RULES if pattern.search(text)] == [rule]


@pytest.mark.parametrize(
    "text",
    [
        "accuracy 0.004",
        "1,004 images",
        "Eq. 13 of Guo et al. 2022",
        "python -m pytest -q",
        "C = 8 chunks, 1000 images",
        "runs/quickstart-20261130-101500",
        "/usr/share/datasets/fashion-mnist",
    ],
)
def test_ordinary_prose_passes(text: str) -> None:
    assert [name for name, pattern in RULES if pattern.search(text)] == []


def test_readme_is_a_short_front_page_whose_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    linked = set(re.findall(r"\]\(([^)#]+)\)", text)) | set(
        re.findall(r"`((?:docs|tests|configs)/[\w./-]+\.(?:md|toml|py))`", text)
    )
    assert "docs/CONFIGURATION.md" in linked and "docs/REFERENCES.md" in linked
    assert sorted(p for p in linked if not (ROOT / p).exists()) == []
    for name in ("LICENSE", "CITATION.cff", "CHANGELOG.md", "docs/REFERENCES.md"):
        assert (ROOT / name).is_file(), name


def test_shipped_results_name_no_development_checkout() -> None:
    # bench/common.save writes another checkout as "<a checkout of COMMIT>" and this one as "."
    pattern = re.compile(r"(?<![\w.~-])/(?:work|root|home)/")
    files = sorted((ROOT / "bench" / "results").glob("*.json")) + sorted((ROOT / "results").rglob("*.*"))
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert files and not found, "\n".join(found)
