"""The README and the documentation site stay true: the README is one page a newcomer reads
(≤ 300 lines), every relative link lands on a file, the README's suite is valid and its command
table names exactly the commands and options the app has, its test command is CI's, the
generated pages come from the app and the registries, and `mkdocs build --strict` passes."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from cnnbench.cli import app
from scripts import docs_hooks

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _without_code(text: str) -> str:
    """The markdown with its fenced blocks and inline code taken out (links there are text)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_the_readme_is_one_page_a_newcomer_reads():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; the reference goes in docs/"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(page):
    broken = []
    for target in LINK.findall(_without_code(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL, or an anchor of this page (mkdocs --strict checks anchors)
        path = target.split("#")[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert broken == [], f"{page.name} links to files that do not exist: {broken}"


def test_every_docs_page_is_in_the_site_nav():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [p.name for p in PAGES if not re.search(rf":\s*{re.escape(p.name)}\s*$", nav, re.M)]
    assert missing == []


def test_the_readme_suite_is_valid():
    from cnnbench.suite import validate_suite

    block = re.search(r"```yaml\n(.*?)```", _section(README.read_text(), "## A suite"), re.S)
    suite = validate_suite(yaml.safe_load(block.group(1)))
    assert suite.name == "mnist-optimizers"


def test_the_readme_test_command_is_the_one_ci_runs():
    tests = _section(README.read_text(), "## Tests")
    command = re.search(r"```bash\n(.*?)\n```", tests, re.S).group(1).strip()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command in [line.strip() for line in ci]


def _readme_commands() -> dict[str, str]:
    """Each command of the README's command table, with the first cell of its row."""
    table = _section(README.read_text(), "## The command line")
    rows = re.findall(r"^\| `cnnbench ([a-z-]+)([^|]*(?:\\\|[^|]*)*)` \|", table, re.M)
    return {name: rest for name, rest in rows}


def test_the_readme_command_table_names_every_command_once():
    group = typer.main.get_command(app)
    ctx = group.make_context("cnnbench", [], resilient_parsing=True)
    assert sorted(_readme_commands()) == sorted(group.list_commands(ctx))


@pytest.mark.parametrize("name", sorted(_readme_commands()))
def test_the_readme_command_table_gives_only_real_options(name):
    group = typer.main.get_command(app)
    ctx = group.make_context("cnnbench", [], resilient_parsing=True)
    command = group.get_command(ctx, name)
    options = {opt for param in command.params
               for opt in [*param.opts, *param.secondary_opts]}
    written = set(re.findall(r"--[a-z][a-z-]*", _readme_commands()[name]))
    assert written - options == set(), f"cnnbench {name} has no option {written - options}"


def test_the_cli_reference_is_each_command_s_own_help():
    reference = docs_hooks.cli_reference()
    for name, _ in docs_hooks.command_names():
        assert f"### `cnnbench {name}`" in reference
        assert docs_hooks.help_text([name]).rstrip() in reference
    assert "<!-- cnnbench:cli -->" in (ROOT / "docs" / "cli.md").read_text()


@pytest.mark.parametrize("what", ["optimizers", "datasets"])
def test_the_registry_tables_are_what_cnnbench_list_prints(what):
    from cnnbench.render import listing

    rows = listing.optimizer_rows() if what == "optimizers" else listing.dataset_rows()
    table = docs_hooks.listing(what)
    body = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [line.split("|")[1].strip() for line in body] == [row["name"] for row in rows]
    page = (ROOT / "docs" / f"{what}.md").read_text()
    assert f"<!-- cnnbench:list {what} -->" in page
    assert "| `sgd` |" not in page and "| `mnist-mini` |" not in page  # no hand-made copy


def test_a_rich_table_becomes_a_markdown_table():
    from rich.table import Table

    table = Table(title="t")
    table.add_column("name")
    table.add_column("params\n@ x", justify="right")
    table.add_row("a|b", "1,000")
    assert docs_hooks.rich_table_markdown(table) == (
        "*t*\n\n| name | params @ x |\n|---|---:|\n| a\\|b | 1,000 |\n")


@pytest.mark.subprocess
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (pip install -e '.[docs]')")
def test_the_site_builds_strict(tmp_path):
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNING" not in done.stderr
    cli = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "cnnbench run [OPTIONS]" in cli
    for page, row in [("models", "resnet152"), ("optimizers", "qhadam"),
                      ("datasets", "mnist-mini")]:
        assert f"<td>{row}</td>" in (tmp_path / "site" / page / "index.html").read_text(), page
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for name in ("load_suite", "run_suite", "load_results", "create_model", "create_optimizer"):
        assert f'id="cnnbench.{name}"' in api
