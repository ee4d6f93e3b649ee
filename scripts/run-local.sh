#!/usr/bin/env bash
# The local stack (what `make run` runs): Azurite with accounts devstoreaccount1 and acct2,
# the copy simulator as account slowdemo, the demo blobs, and the handler. bin/devstack
# (internal/testenv/cmd/devstack) starts and supervises them all: SIGINT or SIGTERM to
# this script (or to `make run`) stops every one and frees every port within seconds; a
# port already in use stops the start with a message, it is never reused.
#
# Ports and options come from the environment (make run passes them):
#   BLOB_PORT QUEUE_PORT TABLE_PORT (10000-10002), HANDLER_PORT (7071),
#   SLOWDEMO_PORT (10005), CALLBACK_PORT (10006), DEBUG=1 (Azurite debug log in .azurite/debug.log), AZURITE.
# Extra arguments go to devstack (bin/devstack -h lists them).
set -euo pipefail
cd "$(dirname "$0")/.."

for bin in bin/devstack bin/handler; do
	[ -x "$bin" ] || { echo "$bin is missing: run 'make run' (or 'make host') to build it" >&2; exit 1; }
done

args=(
	-azurite "${AZURITE:-.tools/node_modules/.bin/azurite}"
	-handler bin/handler
	-blob-port "${BLOB_PORT:-10000}" -queue-port "${QUEUE_PORT:-10001}" -table-port "${TABLE_PORT:-10002}"
	-handler-port "${HANDLER_PORT:-7071}" -slowdemo-port "${SLOWDEMO_PORT:-10005}" -callback-port "${CALLBACK_PORT:-10006}"
)
case "${DEBUG:-}" in
	"" | 0 | false) ;;
	*) args+=(-debug) ;;
esac

# exec: devstack gets this script's signals directly, with no shell in between.
exec bin/devstack "${args[@]}" "$@"
