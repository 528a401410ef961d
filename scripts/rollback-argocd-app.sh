#!/bin/sh
# The original design's manual Argo CD rollback, now `rollback-receiver rollback --argocd-only`.
# Variables: SERVICE_NAME, TARGET_REVISION (optional), ROLLBACK_REASON (optional), and
# RECEIVER_URL + ADMIN_TOKEN of the receiver that runs it. Exit codes are the CLI's:
# 0 done, 1 failed or refused, 4 could not reach the receiver.
set -eu
exec "${ROLLBACK_RECEIVER:-rollback-receiver}" rollback --service "${SERVICE_NAME:-app}" --argocd-only "$@"
