// Package openapidefs holds the OpenAPI definitions of the served Kubernetes
// types, generated from the Go types by kube-openapi's openapi-gen
// (`make generate`). Do not edit zz_generated.openapi.go by hand.
package openapidefs
