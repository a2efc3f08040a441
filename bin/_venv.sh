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
  # uv installs the project's packages in seconds where pip takes minutes (same versions)
  .venv/bin/pip install --quiet --disable-pip-version-check --upgrade pip uv==0.13.9
fi
stamp=".venv/.installed${EXTRAS:+-$EXTRAS}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "› installing the project${EXTRAS:+ with [$EXTRAS]} into .venv"
  if [ -x .venv/bin/uv ]; then
    .venv/bin/uv pip install --quiet --python .venv/bin/python -e ".${EXTRAS:+[$EXTRAS]}"
  else
    .venv/bin/pip install --quiet --disable-pip-version-check -e ".${EXTRAS:+[$EXTRAS]}"
  fi
  echo "$want" > "$stamp"
fi
