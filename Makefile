# Mycel's build, test and run targets. Everything CI runs is `make test`.
SHELL := /bin/bash
# The Podman bindings need these tags (no gpgme, btrfs or devicemapper headers).
export GOFLAGS := -tags=remote,exclude_graphdriver_btrfs,btrfs_noversion,exclude_graphdriver_devicemapper,containers_image_openpgp
GO ?= go
KUBE_OPENAPI_GEN := k8s.io/kube-openapi/cmd/openapi-gen@v0.0.0-20260721132016-d427ff9ee9ad
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.7.0

.PHONY: build test unit fuzz e2e verify up bench image generate setup clean

build: ## build bin/mycel
	$(GO) build -o bin/mycel ./cmd/mycel

setup: ## install what builds and tests need (Go modules, Podman, the demo image)
	./scripts/setup.sh

test: setup build image ## everything CI runs: unit tests, Rego tests, a short run of every fuzz target, e2e with real Podman and kubectl
	$(GO) test -race -count=1 ./...
	./scripts/fuzz.sh
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 30m -v ./e2e/

unit: ## unit and Rego tests only
	$(GO) test -race -count=1 ./...

fuzz: ## every fuzz target for FUZZTIME (default 5s) each
	./scripts/fuzz.sh

e2e: build image ## the e2e suite only
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 30m -v ./e2e/

verify: ## gofmt, go vet, staticcheck, go mod tidy diff
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v zz_generated)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) mod tidy
	@if ! git diff --quiet -- go.mod go.sum; then git diff -- go.mod go.sum; echo "go mod tidy changed go.mod/go.sum"; exit 1; fi

up: setup build image ## set up this machine and run a local fabric
	./bin/mycel up

bench: build image ## benchmarks (results and how to read them: docs/benchmarks.md)
	$(GO) test -run '^$$' -bench . ./workloadplane/store/
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 60m -run '^$$' -bench 'Deploy10Replicas' -benchtime 20x ./e2e/
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 10m -run '^$$' -bench 'IdleNodeRSS' -benchtime 1x ./e2e/
	$(GO) test -run '^$$' -bench 'Fabric100' -benchtime 50x ./machineplane/dht/
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 20m -run '^$$' -bench 'JoinVisible|KillNotReady' -benchtime 5x ./e2e/
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 20m -run '^$$' -bench 'WritePropagation' -benchtime 50x ./e2e/
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 30m -run '^$$' -bench 'FalsePositives' -benchtime 1x ./e2e/
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 30m -run '^$$' -bench 'Heal10k' -benchtime 1x ./e2e/
	./bin/mycel bench --nodes 10,100,1000 --pods 1000
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 20m -run '^$$' -bench 'PlacementLatency' -benchtime 50x ./e2e/
	MYCEL_E2E=1 $(GO) test -count=1 -timeout 30m -run '^$$' -bench 'KillReplaced' -benchtime 5x ./e2e/

image: ## build the demo image localhost/mycel-demo:0.1 (no registry needed)
	./scripts/build-image.sh

generate: ## regenerate the OpenAPI definitions from the k8s.io/api Go types
	$(GO) run $(KUBE_OPENAPI_GEN) \
	  --output-dir ./kubeapi/internal/openapidefs --output-pkg github.com/mycelfabric/mycel/kubeapi/internal/openapidefs \
	  --output-file zz_generated.openapi.go --report-filename /dev/null \
	  k8s.io/api/core/v1 k8s.io/api/apps/v1 k8s.io/api/authentication/v1 k8s.io/api/authorization/v1 k8s.io/api/autoscaling/v1 k8s.io/api/autoscaling/v2 k8s.io/api/batch/v1 k8s.io/api/policy/v1 k8s.io/api/scheduling/v1alpha3 k8s.io/metrics/pkg/apis/metrics/v1beta1 \
	  k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/api/resource \
	  k8s.io/apimachinery/pkg/util/intstr k8s.io/apimachinery/pkg/runtime k8s.io/apimachinery/pkg/version
	sed -i 's/^package openapi$$/package openapidefs/' kubeapi/internal/openapidefs/zz_generated.openapi.go

clean:
	rm -rf bin
