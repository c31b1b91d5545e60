"""MkDocs hooks (`hooks:` in mkdocs.yml): the parts of the documentation site that cnnbench
itself knows are generated from it when the site is built, never copied by hand.

- `<!-- cnnbench:cli -->`: the command-line reference, `cnnbench --help` and each command's
  `--help`, taken from the Typer app in the order `cnnbench --help` lists them;
- `<!-- cnnbench:list models -->` (`optimizers`, `datasets`): the table `cnnbench list …` prints,
  from the same rows and the same rich table, written as a markdown table;
- `<!-- cnnbench:readme -->`: the README, so the site's home page is the README itself.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HELP_WIDTH = 100  # columns of the help text, as a terminal of this width prints it
MARKER = re.compile(r"<!-- cnnbench:(cli|readme|list (?:models|optimizers|datasets)) -->")


def help_text(args: list[str]) -> str:
    """What `cnnbench ARGS --help` prints on a terminal HELP_WIDTH columns wide."""
    from typer.testing import CliRunner

    from cnnbench.cli import app

    result = CliRunner().invoke(app, [*args, "--help"], prog_name="cnnbench",
                                terminal_width=HELP_WIDTH)
    if result.exit_code != 0:
        raise RuntimeError(f"cnnbench {' '.join(args)} --help exited {result.exit_code}: "
                           f"{result.output}")
    return result.output.rstrip() + "\n"


def command_names() -> list[tuple[str, str]]:
    """The commands in the order `cnnbench --help` lists them, with their one-line summaries."""
    import typer

    from cnnbench.cli import app

    group = typer.main.get_command(app)
    ctx = group.make_context("cnnbench", [], resilient_parsing=True)
    return [(name, group.get_command(ctx, name).get_short_help_str(limit=300))
            for name in group.list_commands(ctx)]


def cli_reference() -> str:
    """Markdown: a table of the commands, then each command's help as a section."""
    commands = command_names()
    parts = ["| command | what it does |", "|---|---|"]
    parts += [f"| [`{name}`](#cnnbench-{name}) | {_cell(summary)} |" for name, summary in commands]
    parts += ["", "### `cnnbench`", "", "```text", help_text([]).rstrip(), "```"]
    for name, _ in commands:
        parts += ["", f"### `cnnbench {name}`", "", "```text", help_text([name]).rstrip(), "```"]
    return "\n".join(parts) + "\n"


def listing(what: str) -> str:
    """Markdown: the table `cnnbench list WHAT` prints (for datasets without the `found` column,
    which says where this machine keeps each dataset)."""
    from cnnbench.render import listing as lst

    if what == "models":
        table = lst.models_table(lst.model_rows())
    elif what == "optimizers":
        table = lst.optimizers_table(lst.optimizer_rows())
    elif what == "datasets":
        table = lst.datasets_table(lst.dataset_rows())
        table.title = None
    else:
        raise ValueError(f"no listing {what!r}")
    return rich_table_markdown(table, leave_out={"found"})


def rich_table_markdown(table, *, leave_out: set[str] = frozenset()) -> str:
    """A rich `Table` of text cells as a markdown table (its title, if any, as a caption)."""
    columns = [c for c in table.columns if str(c.header) not in leave_out]
    align = {"right": "---:", "center": ":---:"}
    lines = ["| " + " | ".join(_cell(str(c.header)) for c in columns) + " |",
             "|" + "|".join(align.get(c.justify, "---") for c in columns) + "|"]
    for row in zip(*(list(c.cells) for c in columns)):
        lines.append("| " + " | ".join(_cell(str(cell)) for cell in row) + " |")
    caption = [f"*{table.title}*", ""] if table.title else []
    return "\n".join(caption + lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def readme() -> str:
    """The README with its links into docs/ made relative to docs/ (for the site's home page)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.sub(r"\]\(docs/", "](", text)


def expand(markdown: str) -> str:
    """`markdown` with every cnnbench marker replaced by what it stands for."""
    def replace(match: re.Match) -> str:
        kind = match.group(1)
        if kind == "cli":
            return cli_reference()
        if kind == "readme":
            return readme()
        return listing(kind.split()[1])

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **kwargs) -> str:
    return expand(markdown)
