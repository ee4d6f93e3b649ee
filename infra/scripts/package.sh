#!/bin/sh
# azd prepackage hook: build the Linux handler and stage the function app package
# (host.json, the handler executable, every <function>/function.json) in
# build/functionapp, the `dist` of the `handler` service in azure.yaml.
set -eu
cd "$(dirname "$0")/../.."
make build
out=build/functionapp
rm -rf "$out"
mkdir -p "$out"
cp host.json "$out/"
cp handler "$out/handler"
chmod 755 "$out/handler"
for f in */function.json; do
	fn=${f%/function.json}
	mkdir -p "$out/$fn"
	cp "$f" "$out/$fn/function.json"
done
echo "staged $(ls "$out" | tr '\n' ' ')in $out"
