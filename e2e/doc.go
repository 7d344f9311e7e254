// Package e2e runs real mycel processes against real Podman and drives them
// with the real kubectl. It runs when MYCEL_E2E=1 (`make test` sets it) and
// needs bin/mycel and the demo image (`make build image`).
package e2e
