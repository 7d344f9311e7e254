package sched

import (
	"context"

	"github.com/mycelfabric/mycel/securityplane/policy"
)

// opa evaluates the placement policy with the OPA engine.
type opa struct{ e *policy.Engine }

// OPA is the placement Policy of an OPA engine's placement rules
// (policies/placement.rego by default).
func OPA(e *policy.Engine) Policy { return opa{e} }

func (p opa) Place(ctx context.Context, in PolicyInput) (Verdict, error) {
	v, err := p.e.Place(ctx, in)
	return Verdict{Score: v.Score, Deny: v.Deny}, err
}
