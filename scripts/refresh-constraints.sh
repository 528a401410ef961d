#!/usr/bin/env bash
# `make constraints`: pin every runtime and test dependency as a fresh venv resolves them today.
# CI (`make test`), `make run` and the Dockerfile install with `pip install -c constraints.txt`.
set -euo pipefail
cd "$(dirname "$0")/.."
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
python3 -m venv "$fresh/venv"
"$fresh/venv/bin/python" -m pip install -q --upgrade pip
"$fresh/venv/bin/python" -m pip install -q '.[test]'
{
  echo "# Pinned runtime + test dependencies. Refresh with \`make constraints\`; used through"
  echo "# \`pip install -c constraints.txt\` by make run, make test (CI) and the Dockerfile."
  "$fresh/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^rollback-receiver[= @]'
} > constraints.txt.new
mv constraints.txt.new constraints.txt
echo "constraints.txt: $(grep -vc '^#' constraints.txt) pins"
