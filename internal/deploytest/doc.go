// Package deploytest checks the deployment descriptions against the code,
// since no container engine or Render runs here: the Dockerfile builds with
// go.mod's Go version and the very command `make build` runs, and
// render.yaml is valid YAML that gives both services every variable of
// DESIGN §7, secrets only from the platform's secret store.
package deploytest
