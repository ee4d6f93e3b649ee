#!/usr/bin/env bash
# Starts Azurite on loopback (unless something already serves its ports) and runs the
# handler standalone. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
AZURITE=${AZURITE:-.tools/node_modules/.bin/azurite}
mkdir -p .azurite

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

azurite_pid=""
if port_open 10000 && port_open 10001; then
  echo "Azurite (or another storage emulator) already listens on 10000/10001: using it"
else
  # A second account (acct2) for the cross-account examples; it reuses Azurite's
  # well-known development key, so local.settings.json holds no other secret.
  DEV_KEY="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
  AZURITE_ACCOUNTS="devstoreaccount1:$DEV_KEY;acct2:$DEV_KEY" \
  "$AZURITE" --silent --skipApiVersionCheck --loose --location .azurite --debug .azurite/debug.log \
    --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 >.azurite/azurite.log 2>&1 &
  azurite_pid=$!
  for _ in $(seq 1 60); do port_open 10000 && port_open 10001 && break; sleep 0.5; done
  port_open 10000 || { echo "Azurite did not start; see .azurite/azurite.log"; exit 1; }
  echo "Azurite started (pid $azurite_pid), data in .azurite/"
fi
cleanup() { [ -n "$azurite_pid" ] && kill "$azurite_pid" 2>/dev/null || true; }
trap cleanup EXIT

./handler -ensure-storage
# Demo containers used by the README's curl examples.
/usr/bin/python3 - <<'PY' || true
from azure.storage.blob import BlobServiceClient
cs = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
      "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
      "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;")
for account in ("devstoreaccount1", "acct2"):
    svc = BlobServiceClient.from_connection_string(cs.replace("devstoreaccount1", account))
    for c in ("source", "backup"):
        try:
            svc.create_container(c)
        except Exception:
            pass
    svc.get_blob_client("source", "hello.txt").upload_blob(("hello from " + account + "\n").encode(), overwrite=True)
    print("demo blob: http://127.0.0.1:10000/%s/source/hello.txt" % account)
PY
echo "handler on http://127.0.0.1:7071 (Ctrl-C stops it)"
./handler &
handler_pid=$!
trap 'kill -TERM $handler_pid 2>/dev/null; wait $handler_pid; cleanup' INT TERM
wait $handler_pid
