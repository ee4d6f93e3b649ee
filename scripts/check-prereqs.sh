#!/usr/bin/env bash
# Checks what `make run` (or `make test`) needs before anything is installed or built,
# and says what is missing and where to get it. Usage: check-prereqs.sh run|test
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}
fail=0
missing() { echo "missing: $*" >&2; fail=1; }

# version_ge A B: A >= B for dotted versions.
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

want_go=$(awk '/^go [0-9]/ {print $2; exit}' go.mod)
if ! command -v "${GO:-go}" >/dev/null; then
	missing "Go ${want_go} or later (https://go.dev/dl/)"
else
	have_go=$("${GO:-go}" env GOVERSION 2>/dev/null | sed 's/^go//')
	# go.mod's toolchain line lets an older go fetch the right one (GOTOOLCHAIN=auto) when
	# the module proxy is reachable; say so rather than fail.
	if ! version_ge "${have_go%%-*}" "${want_go%.*}"; then
		echo "note: go ${have_go} is older than go.mod's ${want_go}; Go will try to download ${want_go} (GOTOOLCHAIN=auto)" >&2
	fi
fi

if ! command -v node >/dev/null; then
	missing "Node.js 22 or later, which runs Azurite 3.37 (https://nodejs.org/)"
else
	have_node=$(node --version | sed 's/^v//')
	if ! version_ge "$have_node" 22; then
		echo "warning: Node.js $have_node is older than 22, the minimum Azurite 3.37 declares; if Azurite fails to start, upgrade Node" >&2
	fi
fi
if [ ! -x .tools/node_modules/.bin/azurite ] && ! command -v npm >/dev/null; then
	missing "npm (it comes with Node.js) to install Azurite into .tools"
fi

if [ "$mode" = test ] && ! /usr/bin/python3 -c 'import azure.storage.blob' 2>/dev/null; then
	if ! command -v apt-get >/dev/null; then
		missing "Python 3 with azure-storage-blob at /usr/bin/python3 (the tests' independent client; Debian: apt-get install python3-azure)"
	else
		echo "note: make test installs Debian's python3-azure with apt-get (sudo when not root)" >&2
	fi
fi

if [ "$fail" != 0 ]; then
	echo "install what is missing, then run make $mode again (README, \"Prerequisites\")" >&2
	exit 1
fi
