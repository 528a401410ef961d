#!/bin/sh
# The original design's scheduled job, now a thin wrapper over `rollback-receiver monitor --once`.
# Variables: PROMETHEUS_URL, ROLLBACK_ENABLED, REDIS_URL (monitor needs the shared store),
# and every other receiver variable. Exit codes are monitor's: 0 evaluated (whatever was
# decided), 1 a rollback it started failed, 4 could not evaluate.
set -eu
exec "${ROLLBACK_RECEIVER:-rollback-receiver}" monitor --once "$@"
