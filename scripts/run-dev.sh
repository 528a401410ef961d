#!/usr/bin/env bash
# `make run`: a receiver on 127.0.0.1:8080 in dry-run mode against a local GitOps repo.
# Everything it makes lives in .dev/ (delete it to start over). Override any variable
# from the environment, e.g. `DRY_RUN=false make run` or `REDIS_URL=redis://127.0.0.1:6379/0 make run`.
set -euo pipefail
cd "$(dirname "$0")/.."
dev="${DEV_DIR:-$PWD/.dev}"
mkdir -p "$dev"

# A small GitOps repository with two deploys of "app", so a rollback has somewhere to go.
if [ ! -d "$dev/gitops.git" ]; then
  work=$(mktemp -d)
  git init -q -b main "$work"
  mkdir -p "$work/k8s/app"
  for version in 1.0.0 1.1.0; do
    printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: example/app:%s\n' \
      "$version" > "$work/k8s/app/deployment.yaml"
    git -C "$work" add -A
    git -C "$work" -c user.name=dev -c user.email=dev@localhost commit -q -m "deploy app $version"
  done
  git clone -q --bare "$work" "$dev/gitops.git"
  rm -rf "$work"
fi

export SERVICE_NAME="${SERVICE_NAME:-app}"
export NAMESPACE="${NAMESPACE:-production}"
export GITOPS_REPO="${GITOPS_REPO:-file://$dev/gitops.git}"
export GITOPS_PROVIDER="${GITOPS_PROVIDER:-git}"
export GITOPS_PATH="${GITOPS_PATH:-k8s/app}"
export ROLLBACK_MODE="${ROLLBACK_MODE:-gitops}"
export DRY_RUN="${DRY_RUN:-true}"
export BLACKOUT_WINDOWS="${BLACKOUT_WINDOWS:-none}"
export ROLLBACK_CHANGE_WINDOW="${ROLLBACK_CHANGE_WINDOW:-0}"
export STABILIZATION_SECONDS="${STABILIZATION_SECONDS:-0}"
export ADMIN_TOKEN="${ADMIN_TOKEN:-dev-admin-token}"
export PORT="${PORT:-8080}"
export RECEIVER_DEV=true  # a dry run is the point here: no DRY_RUN warning at start
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$dev/metrics}"

cat <<MSG
rollback-receiver (development) on http://127.0.0.1:$PORT
  dry run: ${DRY_RUN}   store: ${REDIS_URL:-embedded (one worker)}   GitOps repo: $GITOPS_REPO
  development admin token: $ADMIN_TOKEN

In another terminal:
  curl -s -X POST -H 'Content-Type: application/json' --data @examples/alert-firing.json http://127.0.0.1:$PORT/webhook
  RECEIVER_URL=http://127.0.0.1:$PORT ADMIN_TOKEN=$ADMIN_TOKEN .venv/bin/rollback-receiver history
MSG
exec .venv/bin/rollback-receiver serve --bind "127.0.0.1:$PORT" --workers 1
