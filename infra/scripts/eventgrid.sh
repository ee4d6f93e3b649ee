#!/bin/sh
# azd postdeploy hook: subscribe the source accounts COPY_RULES names to Event Grid once the
# handler runs. Event Grid validates a webhook when the subscription is created, so the first
# `azd up` provisions without subscriptions (BLOBCOPY_EVENTGRID_KEY empty); after the deploy
# this hook creates the key's value, stores it in the azd environment and provisions again,
# which creates the function key "eventgrid", the system topics and the subscriptions.
# Nothing happens when no rule names a source account, or when the key is already set
# (later `azd up` runs provision the subscriptions directly). Set BLOBCOPY_EVENTGRID_AUTO=false
# to do this step by hand (docs/deploy.md).
set -eu
if [ -z "${BLOBCOPY_EVENTGRID_ACCOUNTS:-}" ]; then
	echo "eventgrid: no source account named by COPY_RULES; nothing to subscribe"
	exit 0
fi
if [ -n "${BLOBCOPY_EVENTGRID_KEY:-}" ]; then
	echo "eventgrid: subscriptions provisioned for ${BLOBCOPY_EVENTGRID_ACCOUNTS}"
	exit 0
fi
if [ "${BLOBCOPY_EVENTGRID_AUTO:-true}" = "false" ]; then
	echo "eventgrid: BLOBCOPY_EVENTGRID_AUTO=false; set BLOBCOPY_EVENTGRID_KEY and run azd provision to subscribe ${BLOBCOPY_EVENTGRID_ACCOUNTS}"
	exit 0
fi
# 32 random bytes, URL-safe (the key travels in ?code=); never printed.
key=$(head -c 32 /dev/urandom | base64 | tr -d '=+/\n')
azd env set BLOBCOPY_EVENTGRID_KEY "$key" >/dev/null
echo "eventgrid: provisioning Event Grid subscriptions for ${BLOBCOPY_EVENTGRID_ACCOUNTS}"
azd provision --no-prompt
