package sched

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mycelfabric/mycel/securityplane/policy"
)

// opa evaluates the placement policy with the OPA engine.
type opa struct {
	e *policy.Engine
	// pod is whether the policies read input.pod; when they do not (the
	// default placement policy does not), the pod, the costliest part of
	// the input to build, is left out.
	pod bool
}

// OPA is the placement Policy of an OPA engine's placement rules
// (policies/placement.rego by default).
func OPA(e *policy.Engine) Policy { return opa{e: e, pod: e.Reads("pod")} }

func (p opa) Place(ctx context.Context, in PolicyInput) (Verdict, error) {
	if !p.pod {
		in.Pod = nil
	}
	input, err := in.regoValue()
	if err != nil {
		return Verdict{}, fmt.Errorf("placement input: %w", err)
	}
	v, err := p.e.Place(ctx, input)
	return Verdict{Score: v.Score, Deny: v.Deny}, err
}

// regoValue is the policy input as OPA's own value, built directly: only
// the pod goes through JSON (once), the rest is a handful of terms. Without
// a pod, input.pod is absent.
func (in PolicyInput) regoValue() (ast.Value, error) {
	var pod ast.Value
	if in.Pod != nil {
		raw, err := json.Marshal(in.Pod)
		if err != nil {
			return nil, err
		}
		if pod, err = ast.ValueFromReader(bytes.NewReader(raw)); err != nil {
			return nil, err
		}
	}
	n := in.Node
	labels := make([][2]*ast.Term, 0, len(n.Labels))
	for k, v := range n.Labels {
		labels = append(labels, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
	}
	res := func(r Resources) *ast.Term {
		return ast.ObjectTerm(ast.InternedItem("milliCPU", r.MilliCPU), ast.InternedItem("memoryBytes", r.MemoryBytes), ast.InternedItem("pods", r.Pods))
	}
	node := []([2]*ast.Term){
		ast.InternedItem("name", n.Name), ast.Item(ast.StringTerm("labels"), ast.ObjectTerm(labels...)),
		ast.Item(ast.StringTerm("allocatable"), res(n.Allocatable)), ast.Item(ast.StringTerm("free"), res(n.Free)),
		ast.Item(ast.StringTerm("requests"), res(n.Requests)),
		ast.Item(ast.StringTerm("percentFreeAfter"), ast.ObjectTerm(ast.InternedItem("cpu", n.PercentFreeAfter.CPU), ast.InternedItem("memory", n.PercentFreeAfter.Memory))),
	}
	if n.Zone != "" {
		node = append(node, ast.InternedItem("zone", n.Zone))
	}
	input := ast.NewObject(
		ast.Item(ast.StringTerm("node"), ast.ObjectTerm(node...)),
		ast.InternedItem("requester", in.Requester),
		ast.Item(ast.StringTerm("siblings"), ast.ObjectTerm(ast.InternedItem("node", in.Siblings.Node), ast.InternedItem("zone", in.Siblings.Zone))),
	)
	if pod != nil {
		input.Insert(ast.StringTerm("pod"), ast.NewTerm(pod))
	}
	return input, nil
}
