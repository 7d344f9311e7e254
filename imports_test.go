package mycel

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/mycelfabric/mycel"

// importRules say what each part of the house may not import (docs/
// architecture.md): the planes meet only in the root package and cmd/.
var importRules = []struct {
	dir       string   // a directory of the module
	forbidden []string // module paths it may not import
	why       string
}{
	{"machineplane", []string{"workloadplane", "kubeapi", "dashboard", "cmd", ""}, "the machine plane imports neither the workload plane nor the API"},
	{"securityplane", []string{"machineplane", "workloadplane", "kubeapi", "dashboard", "cmd", ""}, "the security plane imports no other plane"},
	{"workloadplane", []string{"kubeapi", "dashboard", "cmd", ""}, "the workload plane does not import the API"},
	{"kubeapi", []string{"machineplane", "workloadplane/agent", "workloadplane/controller", "workloadplane/sched", "workloadplane/replica", "workloadplane/runtime", "cmd", ""}, "the API is HTTP over the object layer"},
	{"api", []string{"machineplane", "securityplane", "workloadplane", "kubeapi", "cmd", ""}, "API types hold names and types only"},
	{"policies", []string{"machineplane", "securityplane", "workloadplane", "kubeapi", "cmd", ""}, "policies are data"},
}

// TestImportRules fails when a package imports across the planes against
// the rules above (test files included), or when a util/common package
// appears.
func TestImportRules(t *testing.T) {
	bad, err := importViolations(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range bad {
		t.Error(v)
	}
}

// TestImportRulesSeeAForbiddenImport: a machine-plane file importing the
// API is reported.
func TestImportRulesSeeAForbiddenImport(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "machineplane", "probe")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := "package probe\n\nimport _ \"" + module + "/kubeapi\"\n"
	if err := os.WriteFile(filepath.Join(dir, "probe.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bad, err := importViolations(root)
	if err != nil || len(bad) != 1 || !strings.Contains(bad[0], "probe.go imports "+module+"/kubeapi") {
		t.Fatalf("violations %q, %v", bad, err)
	}
}

// importViolations lists every import under root that breaks importRules,
// and every util/common package.
func importViolations(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch base := d.Name(); {
			case base == "testdata" || base == "node_modules" || (strings.HasPrefix(base, ".") && path != root):
				return filepath.SkipDir
			case base == "util" || base == "utils" || base == "common" || base == "helpers":
				out = append(out, path+": no util/common packages; a helper lives in the package that uses it")
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(rel)
		for _, spec := range f.Imports {
			imp, _ := strconv.Unquote(spec.Path.Value)
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			target := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
			for _, r := range importRules {
				if !within(dir, r.dir) {
					continue
				}
				for _, bad := range r.forbidden {
					if (bad == "" && target == "") || (bad != "" && within(target, bad)) {
						out = append(out, path+" imports "+imp+": "+r.why)
					}
				}
			}
		}
		return nil
	})
	return out, err
}

func within(path, dir string) bool { return path == dir || strings.HasPrefix(path, dir+"/") }
