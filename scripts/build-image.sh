#!/usr/bin/env bash
# Builds the demo image localhost/mycel-demo:0.1 from the project's own static
# HTTP server: FROM scratch, no registry needed.
set -euo pipefail
cd "$(dirname "$0")/.."
image=localhost/mycel-demo:0.1
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 GOFLAGS= go build -trimpath -ldflags='-s -w' -o "$ctx/mycel-demo" ./cmd/mycel-demo
cat > "$ctx/Containerfile" <<'CF'
FROM scratch
COPY mycel-demo /mycel-demo
COPY mycel-demo /bin/tar
ENV PATH=/bin
EXPOSE 8080
ENTRYPOINT ["/mycel-demo"]
CF
podman build --quiet -t "$image" -f "$ctx/Containerfile" "$ctx" >/dev/null
echo "built $image"
