package main

import (
	"slices"
	"strings"
	"testing"
)

const mod = "example.com/m"

func graph(edges map[string][]string, std ...string) []Package {
	var pkgs []Package
	for p, imps := range edges {
		pkgs = append(pkgs, Package{ImportPath: p, Imports: imps})
	}
	for _, s := range std {
		pkgs = append(pkgs, Package{ImportPath: s, Standard: true})
	}
	return pkgs
}

// Every rule fires on a graph that breaks it, naming the path, and the
// allowed exceptions do not.
func TestCheckFindsEveryViolation(t *testing.T) {
	pkgs := graph(map[string][]string{
		mod + "/domain":                    {"fmt", "github.com/shopspring/decimal", mod + "/domain/risk", "github.com/jackc/pgx/v5"},
		mod + "/domain/risk":               {"strings", mod + "/app"},
		mod + "/app":                       {mod + "/domain", mod + "/internal/helper", mod + "/projections"},
		mod + "/internal/helper":           {mod + "/adapters/postgres"},
		mod + "/adapters/postgres":         {mod + "/app", mod + "/domain", mod + "/eventstore"},
		mod + "/eventstore":                {"github.com/jackc/pgx/v5", mod + "/domain"},
		mod + "/projections":               {mod + "/app", mod + "/eventstore", mod + "/ports/http"},
		mod + "/ports/http":                {mod + "/app", mod + "/ports/http/internal"},
		mod + "/ports/http/internal":       {"net/http"},
		mod + "/cmd/tradeops":              {mod + "/ports/http", mod + "/projections"},
		mod + "/internal/benchprojections": {mod + "/ports/http"},
		mod + "/internal/bench":            {mod + "/ports/http"},
		"github.com/shopspring/decimal":    {"math/big"},
		"github.com/jackc/pgx/v5":          {"net"},
	}, "fmt", "strings", "math/big", "net", "net/http")
	var got []string
	for _, v := range Check(mod, pkgs) {
		got = append(got, strings.ReplaceAll(v.String()[:strings.Index(v.String(), ":")], mod+"/", ""))
	}
	slices.Sort(got)
	want := []string{
		"app imports internal/helper → adapters/postgres",
		"app imports projections",
		"domain imports github.com/jackc/pgx/v5",
		"domain/risk imports app",
		"eventstore imports domain",
		"internal/bench imports ports/http",
		"projections imports ports/http",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The repository itself keeps its layers (`make lint` runs the command too).
func TestRepositoryKeepsItsLayers(t *testing.T) {
	module, pkgs, err := load()
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 20 || module != "github.com/tradeops/tradeops" {
		t.Fatalf("loaded %d packages of %q", len(pkgs), module)
	}
	for _, v := range Check(module, pkgs) {
		t.Error(v)
	}
}
