// Package mycel wires a Mycel node: the one place that assembles the machine,
// workload and security planes and the Kubernetes-compatible API. cmd/mycel
// parses flags into a Config and runs a Node.
package mycel
