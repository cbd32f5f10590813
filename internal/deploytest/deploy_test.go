package deploytest

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goVersion is go.mod's toolchain version, else its go version.
func goVersion(t *testing.T) string {
	t.Helper()
	mod := read(t, "go.mod")
	if m := regexp.MustCompile(`(?m)^toolchain go(\S+)$`).FindStringSubmatch(mod); m != nil {
		return m[1]
	}
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod has no go line")
	}
	return m[1]
}

func TestDockerfileUsesGoModsGoVersion(t *testing.T) {
	m := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindStringSubmatch(read(t, "Dockerfile"))
	if m == nil {
		t.Fatal("Dockerfile: no ARG GO_VERSION=")
	}
	if want := goVersion(t); m[1] != want {
		t.Errorf("Dockerfile builds with Go %s, go.mod says %s", m[1], want)
	}
	if !strings.Contains(read(t, "Dockerfile"), "FROM golang:${GO_VERSION} AS build") {
		t.Error("the build stage does not use GO_VERSION")
	}
}

// TestDockerfileBuildsLikeMake: the image's go build is `make build`'s, so
// CI, which runs make build, tests the command the image runs.
func TestDockerfileBuildsLikeMake(t *testing.T) {
	m := regexp.MustCompile(`(?m)^build:.*\n\t(.+)$`).FindStringSubmatch(read(t, "Makefile"))
	if m == nil {
		t.Fatal("Makefile: no build recipe")
	}
	want := strings.NewReplacer("$(GO)", "go", "$(VERSION)", "${VERSION}").Replace(m[1])
	docker := read(t, "Dockerfile")
	if !strings.Contains(docker, "\nRUN "+want+"\n") {
		t.Errorf("Dockerfile does not RUN make build's command %q", want)
	}
	for _, line := range []string{
		"ENV CGO_ENABLED=0", // a static binary: the final image has no libc
		"FROM gcr.io/distroless/static-debian12:nonroot", // no shell, CA certificates included
		"COPY --from=build /src/bin/tradeops /tradeops",
		"USER 65532:65532",
		`CMD ["/tradeops", "serve"]`,
	} {
		if !strings.Contains(docker, "\n"+line+"\n") {
			t.Errorf("Dockerfile: no line %q", line)
		}
	}
	for _, secret := range []string{".data", ".git"} {
		if !slices.Contains(strings.Split(read(t, ".dockerignore"), "\n"), secret) {
			t.Errorf(".dockerignore does not keep %s out of the build context", secret)
		}
	}
}

type envVar struct {
	Key           string         `yaml:"key"`
	Value         *string        `yaml:"value"`
	Sync          *bool          `yaml:"sync"`
	GenerateValue any            `yaml:"generateValue"`
	FromDatabase  map[string]any `yaml:"fromDatabase"`
	FromGroup     string         `yaml:"fromGroup"`
}

type blueprint struct {
	EnvVarGroups []struct {
		Name    string   `yaml:"name"`
		EnvVars []envVar `yaml:"envVars"`
	} `yaml:"envVarGroups"`
	Databases []struct {
		Name                 string `yaml:"name"`
		PostgresMajorVersion string `yaml:"postgresMajorVersion"`
	} `yaml:"databases"`
	Services []struct {
		Type            string   `yaml:"type"`
		Name            string   `yaml:"name"`
		Runtime         string   `yaml:"runtime"`
		DockerfilePath  string   `yaml:"dockerfilePath"`
		DockerCommand   string   `yaml:"dockerCommand"`
		HealthCheckPath string   `yaml:"healthCheckPath"`
		EnvVars         []envVar `yaml:"envVars"`
	} `yaml:"services"`
}

// design7 lists the variables of DESIGN §7.
var design7 = []string{"DATABASE_URL", "SECRET_KEY", "ENCRYPTION_KEY", "BINANCE_TESTNET_BASE_URL",
	"BINANCE_BASE_URL", "BINANCE_LIVE_ENABLED", "IBKR_BRIDGE_BASE_URL", "RISK_PROFILE_MODEL2_EMAIL",
	"RISK_PROFILE_LOOSE_EMAIL", "LISTEN_ADDR", "LOG_LEVEL"}

func TestRenderBlueprint(t *testing.T) {
	var bp blueprint
	if err := yaml.Unmarshal([]byte(read(t, "render.yaml")), &bp); err != nil {
		t.Fatal("render.yaml:", err)
	}
	groups := map[string][]envVar{}
	for _, g := range bp.EnvVarGroups {
		for _, v := range g.EnvVars {
			// Render refuses these in a group: they belong on a service.
			if v.Sync != nil || v.FromDatabase != nil || v.GenerateValue != nil {
				t.Errorf("group %s: %s is not a plain value", g.Name, v.Key)
			}
		}
		groups[g.Name] = g.EnvVars
	}
	if len(bp.Databases) != 1 || bp.Databases[0].PostgresMajorVersion != "15" {
		t.Fatalf("want one PostgreSQL 15 database, got %+v", bp.Databases)
	}
	// env resolves a service's variables, its groups' included.
	env := func(vars []envVar) map[string]envVar {
		out := map[string]envVar{}
		for _, v := range vars {
			if v.FromGroup != "" {
				g, ok := groups[v.FromGroup]
				if !ok {
					t.Errorf("no envVarGroup %s", v.FromGroup)
				}
				for _, gv := range g {
					out[gv.Key] = gv
				}
				continue
			}
			out[v.Key] = v
		}
		return out
	}
	kinds := map[string]bool{}
	for _, s := range bp.Services {
		kinds[s.Type] = true
		if s.Runtime != "docker" || s.DockerfilePath != "./Dockerfile" {
			t.Errorf("%s: not built from ./Dockerfile", s.Name)
		}
		vars := env(s.EnvVars)
		if db := vars["DATABASE_URL"].FromDatabase; db["name"] != bp.Databases[0].Name || db["property"] != "connectionString" {
			t.Errorf("%s: DATABASE_URL is not the database's connection string", s.Name)
		}
		if _, ok := vars["LOG_LEVEL"]; !ok {
			t.Errorf("%s: no LOG_LEVEL", s.Name)
		}
		switch s.Type {
		case "web":
			if s.DockerCommand != "/tradeops serve --projections=off" || s.HealthCheckPath != "/healthz" {
				t.Errorf("web: command %q, health check %q", s.DockerCommand, s.HealthCheckPath)
			}
			for _, name := range design7 {
				if _, ok := vars[name]; !ok {
					t.Errorf("web: DESIGN §7 variable %s missing", name)
				}
			}
			for _, name := range []string{"SECRET_KEY", "ENCRYPTION_KEY"} {
				// from the platform's secret store: never a value, never generated here
				if v := vars[name]; v.Sync == nil || *v.Sync || v.Value != nil || v.GenerateValue != nil {
					t.Errorf("web: %s must be sync: false without a value", name)
				}
			}
			if v := vars["BINANCE_LIVE_ENABLED"].Value; v == nil || *v != "false" {
				t.Error(`web: BINANCE_LIVE_ENABLED must be "false"`)
			}
			if vars["PORT"].Value == nil || ":"+*vars["PORT"].Value != *vars["LISTEN_ADDR"].Value {
				t.Error("web: LISTEN_ADDR is not the PORT Render routes to")
			}
		case "worker":
			if s.DockerCommand != "/tradeops worker" {
				t.Errorf("worker: command %q", s.DockerCommand)
			}
		}
	}
	if !kinds["web"] || !kinds["worker"] || len(bp.Services) != 2 {
		t.Errorf("want a web service and a worker, got %v", kinds)
	}
}
