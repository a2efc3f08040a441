# Sourced by bin/start, bin/test and bin/bench: create .venv on first use and (re)install the
# project when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
EXTRAS="${1:-}"
if [ ! -x .venv/bin/python ]; then
  echo "› creating virtualenv in .venv"
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
fi
stamp=".venv/.installed${EXTRAS:+-$EXTRAS}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "› installing the project${EXTRAS:+ with [$EXTRAS]} into .venv"
  .venv/bin/pip install --quiet --disable-pip-version-check -e ".${EXTRAS:+[$EXTRAS]}"
  echo "$want" > "$stamp"
fi
