// Package policies holds Mycel's default Rego policies and their tests.
// The node embeds them; `mycel node --policy-dir DIR` replaces them.
package policies

import "embed"

// Default is the embedded default policy set (tests included; loaders skip
// files ending in _test.rego).
//
//go:embed *.rego
var Default embed.FS
