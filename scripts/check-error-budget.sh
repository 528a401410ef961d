#!/bin/sh
# The original design's pre-deploy gate, now a thin wrapper over `rollback-receiver check`.
# Variables: PROMETHEUS_URL, SERVICE_NAME (and NAMESPACE, ERROR_BUDGET, SLO_WINDOW).
# Exit codes are check's: 0 healthy, 1 warning (>=50%), 2 critical (>=80%),
# 3 emergency (>=95%), 4 could not evaluate. Extra arguments go to `check`.
set -eu
exec "${ROLLBACK_RECEIVER:-rollback-receiver}" check --service "${SERVICE_NAME:-app}" "$@"
