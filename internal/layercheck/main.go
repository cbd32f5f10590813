// Command layercheck fails when an import breaks tradeops' layering
// (docs/ARCHITECTURE.md, DESIGN §1); `make lint` runs it:
//
//   - domain imports only the standard library (and the one allowed
//     library, a decimal type);
//   - app depends on no adapter, nor on eventstore, projections, export or
//     ports;
//   - eventstore does not depend on domain (it keeps its own errors);
//   - nothing imports ports but the composition roots.
//
// It reads the import graph of the non-test code from `go list -deps
// -json`. Tests may wire real adapters, so test imports are not checked.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
)

func main() {
	module, pkgs, err := load()
	if err != nil {
		fmt.Fprintln(os.Stderr, "layercheck:", err)
		os.Exit(2)
	}
	violations := Check(module, pkgs)
	for _, v := range violations {
		fmt.Fprintln(os.Stderr, "layercheck:", v)
	}
	if len(violations) > 0 {
		os.Exit(1)
	}
}

// Package is one node of the import graph, as `go list -json` gives it.
type Package struct {
	ImportPath string
	Standard   bool
	Imports    []string
}

// Violation is an import path that breaks a rule: Path[0] is the package
// checked, Path[len-1] the forbidden one, and what lies between the
// packages it goes through.
type Violation struct {
	Path []string
	Rule string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s imports %s: %s", v.Path[0], strings.Join(v.Path[1:], " → "), v.Rule)
}

// Allowed exceptions, each with its reason.
var (
	// domainLibraries may be imported by domain: a decimal type for prices
	// and quantities (DESIGN §1).
	domainLibraries = []string{"github.com/shopspring/decimal"}
	// portsImporters wire ports to the rest: the composition root, and the
	// benchmark program that times the real HTTP handler.
	portsImporters = []string{"cmd/tradeops", "internal/benchprojections"}
)

// Check returns every violation in the graph of module's packages.
func Check(module string, pkgs []Package) []Violation {
	byPath := map[string]Package{}
	for _, p := range pkgs {
		byPath[p.ImportPath] = p
	}
	// rel is p's path inside the module, ok false for other modules and std.
	rel := func(p string) (string, bool) {
		if p == module {
			return "", true
		}
		return strings.CutPrefix(p, module+"/")
	}
	under := func(p string, dirs ...string) bool {
		r, ok := rel(p)
		return ok && slices.ContainsFunc(dirs, func(d string) bool { return r == d || strings.HasPrefix(r, d+"/") })
	}
	var out []Violation
	for _, p := range pkgs {
		switch {
		case under(p.ImportPath, "domain"):
			for _, imp := range p.Imports {
				if !byPath[imp].Standard && !under(imp, "domain") && !slices.Contains(domainLibraries, imp) {
					out = append(out, Violation{[]string{p.ImportPath, imp},
						"domain imports only the standard library (and " + strings.Join(domainLibraries, ", ") + ")"})
				}
			}
		case under(p.ImportPath, "app"):
			out = append(out, reach(byPath, p.ImportPath, func(q string) bool { return under(q, "adapters", "eventstore", "projections", "export", "ports") },
				"app depends on no adapter, eventstore, projections, export or ports: declare an interface in app and implement it there")...)
		case under(p.ImportPath, "eventstore"):
			out = append(out, reach(byPath, p.ImportPath, func(q string) bool { return under(q, "domain") },
				"eventstore does not depend on domain: it keeps its own errors, which the adapters calling it classify")...)
		}
		if !under(p.ImportPath, "ports") && !under(p.ImportPath, portsImporters...) {
			for _, imp := range p.Imports {
				if under(imp, "ports") {
					out = append(out, Violation{[]string{p.ImportPath, imp}, "nothing imports ports but " + strings.Join(portsImporters, " and ")})
				}
			}
		}
	}
	return out
}

// reach returns a violation for each forbidden package from reaches through
// the module's packages, with the first path found to it.
func reach(byPath map[string]Package, from string, forbidden func(string) bool, rule string) []Violation {
	var out []Violation
	via := map[string]string{from: ""}
	for queue := []string{from}; len(queue) > 0; queue = queue[1:] {
		for _, imp := range byPath[queue[0]].Imports {
			if _, seen := via[imp]; seen {
				continue
			}
			via[imp] = queue[0]
			if !forbidden(imp) {
				queue = append(queue, imp)
				continue
			}
			path := []string{imp}
			for p := queue[0]; p != ""; p = via[p] {
				path = append([]string{p}, path...)
			}
			out = append(out, Violation{path, rule})
		}
	}
	return out
}

// load lists the current module's packages and everything they import.
func load() (string, []Package, error) {
	module, err := goList("-m")
	if err != nil {
		return "", nil, err
	}
	module = strings.TrimSpace(module)
	out, err := goList("-deps", "-json=ImportPath,Standard,Imports", module+"/...")
	if err != nil {
		return "", nil, err
	}
	var pkgs []Package
	for dec := json.NewDecoder(strings.NewReader(out)); ; {
		var p Package
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			return module, pkgs, nil
		}
		if err != nil {
			return "", nil, fmt.Errorf("go list output: %w", err)
		}
		pkgs = append(pkgs, p)
	}
}

func goList(args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go list %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}
