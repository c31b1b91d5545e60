#!/usr/bin/env bash
# The low end of the dependency ranges, tested: a fresh venv with every direct dependency of
# pyproject.toml pinned at its floor (`name>=X` → `name==X`, what `uv pip install --resolution
# lowest-direct` picks; what they pull in is resolved newest, as it would be for a user), then
# the CLI and results tests. torch is the exception: only torch 2.13.0 (the CPU build on this
# disk) can be installed here — any other spec pulls multi-GB CUDA wheels — so it is pinned at
# 2.13.0, not at its floor (2.3). pip, not uv: uv does not look at the wheel on disk.
#
#   bash scripts/ci_lowest.sh              # exits non-zero when the install or a test fails
#   LOWEST_VENV=/tmp/low bash scripts/ci_lowest.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${LOWEST_VENV:-}" ]; then
  WORK=$(mktemp -d)
  trap 'rm -rf "$WORK"' EXIT
  LOWEST_VENV=$WORK/venv
fi
VENV=$LOWEST_VENV
TESTS=(tests/test_cli.py tests/test_cli_choices.py tests/test_cli_robust.py tests/test_report.py
       tests/test_results_layout.py tests/test_store_api.py)
FLOORS=$(dirname "$VENV")/floors.txt
mkdir -p "$(dirname "$VENV")"

python3 - "$FLOORS" <<'EOF'
"""Write each direct dependency's floor as a pin: the project's and its test tools'."""
import re
import sys
import tomllib

project = tomllib.load(open("pyproject.toml", "rb"))["project"]
dev = project["optional-dependencies"]["dev"]
wanted = project["dependencies"] + [d for d in dev if d.split(">=")[0] in ("pytest", "hypothesis")]
pins = []
for requirement in wanted:
    name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([^,;\s]+)", requirement).groups()
    pins.append(f"{name}=={'2.13.0' if name == 'torch' else floor}")
open(sys.argv[1], "w").write("\n".join(pins) + "\n")
EOF

echo "floors: $(tr '\n' ' ' < "$FLOORS")"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q torch==2.13.0   # the CPU build; first, so nothing else picks one
"$VENV/bin/python" -m pip install -q -r "$FLOORS" -e .
"$VENV/bin/python" -m pip list --format=freeze > "$(dirname "$VENV")/installed.txt"
# what the floors came to, for the log: the pinned ones and what typer brings
grep -iE '^(typer|click|rich|pydantic|pydantic.core|numpy|pandas|pyarrow|pyyaml|matplotlib|scipy|platformdirs|torch|pytest|hypothesis)==' \
  "$(dirname "$VENV")/installed.txt" | tr '\n' ' '; echo
# the tests' own conftest needs nothing beyond these; -p no:cacheprovider keeps the clone clean
"$VENV/bin/python" -m pytest -p no:cacheprovider "${TESTS[@]}"
