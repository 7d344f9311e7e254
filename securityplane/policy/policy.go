// Package policy evaluates Mycel's OPA policies with the embedded rego
// package: admission, API authorization and placement.
// Policies are compiled once into prepared queries at load; a policy that
// fails to compile is an error naming the file and line.
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// ErrNoPolicies means a policy directory held no .rego files.
var ErrNoPolicies = errors.New("policy: no .rego files")

// The rules the engine evaluates.
const (
	// AdmissionQuery is a set of denial messages.
	AdmissionQuery = "data.mycel.admission.deny"
	// AuthzQuery is a set of denial messages for an API request.
	AuthzQuery = "data.mycel.authz.deny"
	// PlacementPackage is the placement package: "deny", a set of
	// messages, and "score", a number (higher is preferred).
	PlacementPackage = "data.mycel.placement"
	// placementQuery evaluates only those two rules, each collected into an
	// array so that a package without one of them (or without the package)
	// still answers.
	placementQuery = "deny := [m | " + PlacementPackage + ".deny[m]]; score := [s | s := " + PlacementPackage + ".score]"
)

// Engine holds the prepared policy queries.
type Engine struct {
	admission rego.PreparedEvalQuery
	authz     rego.PreparedEvalQuery
	placement rego.PreparedEvalQuery
	files     []string
	// inputs are the top-level input fields the policies read by name;
	// anyInput is set when they may read others (input as a whole, or
	// input[k] with a variable k).
	inputs   map[string]bool
	anyInput bool
}

// LoadDir loads every .rego file (tests excluded) from a directory on disk.
func LoadDir(ctx context.Context, dir string) (*Engine, error) {
	return Load(ctx, os.DirFS(dir), dir)
}

// Load loads every .rego file (tests excluded) at the top of fsys; origin
// names it in errors.
func Load(ctx context.Context, fsys fs.FS, origin string) (*Engine, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("policy: read %s: %w", origin, err)
	}
	e := &Engine{}
	var modules []func(*rego.Rego)
	for _, ent := range entries {
		name := ent.Name()
		if ent.IsDir() || !strings.HasSuffix(name, ".rego") || strings.HasSuffix(name, "_test.rego") {
			continue
		}
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		file := path.Join(origin, name)
		e.files = append(e.files, file)
		modules = append(modules, rego.Module(file, string(src)))
		if m, err := ast.ParseModuleWithOpts(file, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1}); err == nil {
			e.noteInputs(m)
		} else {
			e.anyInput = true // the compile below names the error
		}
	}
	if len(e.files) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoPolicies, origin)
	}
	sort.Strings(e.files)
	for q, dst := range map[string]*rego.PreparedEvalQuery{AdmissionQuery: &e.admission, AuthzQuery: &e.authz, placementQuery: &e.placement} {
		if *dst, err = rego.New(append([]func(*rego.Rego){rego.Query(q)}, modules...)...).PrepareForEval(ctx); err != nil {
			return nil, fmt.Errorf("policy: compile %s: %w", origin, err)
		}
	}
	return e, nil
}

// noteInputs records which top-level input fields module m reads. Every
// ref input.f (or input["f"]) names f; any other use of input (input
// alone, input[k]) may read anything.
func (e *Engine) noteInputs(m *ast.Module) {
	if e.inputs == nil {
		e.inputs = map[string]bool{}
	}
	named := 0
	ast.WalkRefs(m, func(r ast.Ref) bool {
		if len(r) > 1 && r[0].Equal(ast.InputRootDocument) {
			if f, ok := r[1].Value.(ast.String); ok {
				e.inputs[string(f)] = true
				named++
			}
		}
		return false
	})
	uses := 0
	ast.WalkVars(m, func(v ast.Var) bool {
		if v.Equal(ast.InputRootDocument.Value) {
			uses++
		}
		return false
	})
	if uses > named {
		e.anyInput = true
	}
}

// Reads reports whether the policies may read input.field: a caller can
// leave out what no policy reads (placement leaves out the pod, the
// costliest part of its input, for policies that never look at it).
func (e *Engine) Reads(field string) bool { return e.anyInput || e.inputs[field] }

// Files lists the loaded policy files.
func (e *Engine) Files() []string { return e.files }

// DeniedError is a policy's denial; its message lists the policy's reasons.
type DeniedError struct {
	// Policy is "admission" or "authorization".
	Policy  string
	Reasons []string
}

func (d *DeniedError) Error() string {
	return "denied by " + d.Policy + " policy: " + strings.Join(d.Reasons, "; ")
}

// Admit evaluates the admission policy for request (any JSON-marshalable
// value, given to the policy as input.request). It returns *DeniedError when
// the policy denies.
func (e *Engine) Admit(ctx context.Context, request any) error {
	return e.denials(ctx, e.admission, AdmissionQuery, "admission", request)
}

// Authorize evaluates the authorization policy for an API request (given
// to the policy as input.request). It returns *DeniedError when the policy
// denies; a policy set without a mycel.authz package allows every request.
func (e *Engine) Authorize(ctx context.Context, request any) error {
	return e.denials(ctx, e.authz, AuthzQuery, "authorization", request)
}

// denials evaluates a set-of-messages query with input.request.
func (e *Engine) denials(ctx context.Context, q rego.PreparedEvalQuery, query, name string, request any) error {
	input, err := toJSONValue(map[string]any{"request": request})
	if err != nil {
		return fmt.Errorf("policy: %s input: %w", name, err)
	}
	rs, err := q.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return fmt.Errorf("policy: evaluate %s: %w", name, err)
	}
	var reasons []string
	for _, r := range rs {
		for _, ex := range r.Expressions {
			set, ok := ex.Value.([]any)
			if !ok {
				return fmt.Errorf("policy: %s must be a set of strings, got %T", query, ex.Value)
			}
			for _, m := range set {
				reasons = append(reasons, fmt.Sprint(m))
			}
		}
	}
	if len(reasons) == 0 {
		return nil
	}
	sort.Strings(reasons)
	return &DeniedError{Policy: name, Reasons: reasons}
}

// Placement is the placement policy's verdict for one node.
type Placement struct {
	Score float64
	Deny  []string
}

// Place evaluates the placement policy's deny and score rules for input,
// given to the policy as input and built by the caller as OPA's own value
// (no JSON round trip). A policy set without a mycel.placement package
// accepts every node with score 0.
func (e *Engine) Place(ctx context.Context, in ast.Value) (Placement, error) {
	rs, err := e.placement.Eval(ctx, rego.EvalParsedInput(in))
	if err != nil {
		return Placement{}, fmt.Errorf("policy: evaluate placement: %w", err)
	}
	var out Placement
	for _, r := range rs {
		deny, _ := r.Bindings["deny"].([]any)
		for _, m := range deny {
			out.Deny = append(out.Deny, fmt.Sprint(m))
		}
		scores, _ := r.Bindings["score"].([]any)
		for _, s := range scores {
			n, ok := s.(json.Number)
			if !ok {
				return Placement{}, fmt.Errorf("policy: %s.score must be a number, got %T", PlacementPackage, s)
			}
			if out.Score, err = n.Float64(); err != nil {
				return Placement{}, fmt.Errorf("policy: %s.score: %w", PlacementPackage, err)
			}
		}
	}
	sort.Strings(out.Deny)
	return out, nil
}

// toJSONValue turns a Go value into the generic JSON form OPA reads.
func toJSONValue(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(data, &out)
	return out, err
}
