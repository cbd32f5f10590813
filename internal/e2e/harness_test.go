package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/tradeops/tradeops/internal/apispec"
)

// Generous bounds: the machines running make test are shared and loaded.
const (
	startTimeout = 90 * time.Second // serve: start to /healthz ok
	stopTimeout  = 40 * time.Second // serve: SIGTERM to exit (its grace is 25 s)
	waitTimeout  = 30 * time.Second // a projection showing an event
)

// version is what the binary reports in /healthz and the smoke's health line.
const version = "e2e"

var (
	repoRoot string
	binary   string // the tradeops binary TestMain built
)

// TestMain builds the binary once for every test, as make build does.
func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	var err error
	if repoRoot, err = filepath.Abs("../.."); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "tradeops-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "tradeops")
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", binary, "./cmd/tradeops")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/tradeops: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// syncBuffer is a bytes.Buffer safe for the writers of several processes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// deployment is one database and the serve processes run on it one at a
// time, as on a platform: each restart is a new process with its own
// ENCRYPTION_KEY. Everything the processes and the smoke script print is
// kept for the canary check.
type deployment struct {
	dbURL string
	env   map[string]string // serve's environment but ENCRYPTION_KEY
	logs  syncBuffer        // every serve's and CLI command's stdout and stderr

	smokes []smokeRun

	proc   *exec.Cmd
	exited chan struct{}
	base   string
}

// newDeployment's serve processes get env (and DATABASE_URL); the last
// one is stopped when t ends.
func newDeployment(t *testing.T, dbURL string, env map[string]string) *deployment {
	d := &deployment{dbURL: dbURL, env: env}
	d.env["DATABASE_URL"] = dbURL
	t.Cleanup(func() { d.stop(t) })
	return d
}

// environ is a process environment of exactly these variables (never the
// test's own: a CI runner's GITHUB_ACTIONS or DATABASE_URL must not leak in).
func environ(vars ...map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, m := range vars {
		for k, v := range m {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// start runs serve under encryptionKey (stopping the running one first) on
// a port the kernel picks, and waits for /healthz to say ok.
func (d *deployment) start(t testing.TB, encryptionKey string) {
	t.Helper()
	d.stop(t)
	var own syncBuffer
	out := io.MultiWriter(&own, &d.logs)
	cmd := exec.Command(binary, "serve")
	cmd.Env = environ(d.env, map[string]string{"ENCRYPTION_KEY": encryptionKey, "LISTEN_ADDR": "127.0.0.1:0"})
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start serve: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	d.proc, d.exited = cmd, exited
	began := time.Now()
	for deadline := began.Add(startTimeout); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("serve exited with %d before it was healthy:\n%s", cmd.ProcessState.ExitCode(), own.String())
		default:
		}
		if d.base == "" {
			if addr := listeningAddr(own.String()); addr != "" {
				d.base = "http://" + addr
			}
		} else if healthy(t, d.base) {
			t.Logf("serve healthy at %s in %v", d.base, time.Since(began).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not healthy after %v:\n%s", startTimeout, own.String())
		}
	}
}

// listeningAddr is the address of serve's "listening" log line (JSON), or
// "" while there is none.
func listeningAddr(logs string) string {
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
			return line.Addr
		}
	}
	return ""
}

func healthy(t testing.TB, base string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	resp, err := apispec.Client(t).Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var h struct{ Status string }
	return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&h) == nil && h.Status == "ok"
}

// stop sends serve SIGTERM, as a platform does, and expects a clean exit.
func (d *deployment) stop(t testing.TB) {
	t.Helper()
	if d.proc == nil {
		return
	}
	_ = d.proc.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		if code := d.proc.ProcessState.ExitCode(); code != 0 {
			t.Errorf("serve exited with %d after SIGTERM", code)
		}
	case <-time.After(stopTimeout):
		t.Errorf("serve still running %v after SIGTERM; killed", stopTimeout)
		_ = d.proc.Process.Kill()
		<-d.exited
	}
	d.proc, d.base = nil, ""
}

// cli runs a tradeops command on the database with extra environment and
// stdin; its output is returned and kept for the canary check.
func (d *deployment) cli(t testing.TB, stdin string, extra map[string]string, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(binary, args...)
	cmd.Env = environ(map[string]string{"DATABASE_URL": d.dbURL}, extra)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout = io.MultiWriter(&out, &d.logs)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		t.Fatalf("tradeops %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

type reply struct {
	status int
	body   map[string]any
	raw    string
}

// call sends one API request: a body starting with username= is the login
// form, any other is JSON.
func (d *deployment) call(t testing.TB, method, path, token, body string) reply {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case strings.HasPrefix(body, "username="):
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := apispec.Client(t).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func must(t testing.TB, r reply, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("HTTP %d %s, want %d", r.status, r.raw, status)
	}
	return r
}

func (d *deployment) login(t testing.TB, u user, code string) string {
	t.Helper()
	form := "username=" + u.email + "&password=" + u.password
	if code != "" {
		form += "&otp=" + code
	}
	r := must(t, d.call(t, http.MethodPost, "/auth/login", "", form), http.StatusOK)
	tok, _ := r.body["access_token"].(string)
	if tok == "" {
		t.Fatalf("login %s: no access_token in %s", u.email, r.raw)
	}
	return tok
}

// auditEvents polls an admin audit query until it lists at least n events
// (the audit log is a projection) and returns them.
func (d *deployment) auditEvents(t testing.TB, adminToken, query string, n int) []map[string]any {
	t.Helper()
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(100 * time.Millisecond) {
		r := must(t, d.call(t, http.MethodGet, "/ops/audit?"+query, adminToken, ""), http.StatusOK)
		list, _ := r.body["events"].([]any)
		if len(list) >= n || time.Now().After(deadline) {
			var events []map[string]any
			for _, e := range list {
				if m, ok := e.(map[string]any); ok {
					events = append(events, m)
				}
			}
			if len(events) < n {
				t.Fatalf("GET /ops/audit?%s: %d events after %v, want %d: %s", query, len(events), waitTimeout, n, r.raw)
			}
			return events
		}
	}
}

// user is an account created with the CLI, as the runbook does.
type user struct {
	email, role, password string
}

func (d *deployment) createUser(t testing.TB, email, role string) user {
	t.Helper()
	u := user{email: email, role: role, password: randomText(24)}
	d.cli(t, u.password+"\n", nil, "users", "create", "--email", email, "--role", role, "--password-stdin")
	return u
}

// smokeRun is one run of scripts/smoke_prod.sh.
type smokeRun struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
}

// smoke runs scripts/smoke_prod.sh against the running server with only
// the given environment (and PATH, HOME).
//
// The audit step may wait up to 30 s instead of 3: the projections read
// events only below the cluster-wide xmin horizon, so under go test ./...
// another package's open transaction on the shared PostgreSQL can hold this
// run's events back for seconds.
func (d *deployment) smoke(t testing.TB, env map[string]string) smokeRun {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot, "scripts", "smoke_prod.sh"))
	cmd.Env = environ(map[string]string{"BASE_URL": d.base, "PROJECTION_WAIT_SECONDS": "30"}, env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := smokeRun{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("run scripts/smoke_prod.sh: %v", err)
	}
	d.smokes = append(d.smokes, r)
	t.Logf("smoke_prod.sh: exit %d in %v\n%s%s", r.code, r.elapsed.Round(time.Millisecond), r.stdout, r.stderr)
	return r
}

// stepLine is a step's line: name, status, milliseconds, message.
var stepLine = regexp.MustCompile(`^(\S+) +(OK|FAIL|SKIP) +\d+ms(?:  (.*))?$`)

var steps = []string{"health", "login", "secrets", "dry-run", "binance", "ibkr", "audit"}

// wantSmoke checks a run's exit code and that every step printed its line,
// in order, then the summary. want gives a step's expectation as "STATUS" or
// "STATUS text the line contains"; a step not named must be OK.
func wantSmoke(t *testing.T, r smokeRun, code int, want map[string]string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d", r.code, code)
	}
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != len(steps)+1 {
		t.Fatalf("%d lines, want one per step and a summary:\n%s", len(lines), r.stdout)
	}
	for i, name := range steps {
		status, text, _ := strings.Cut(want[name], " ")
		if status == "" {
			status = "OK"
		}
		m := stepLine.FindStringSubmatch(lines[i])
		if m == nil || m[1] != name || m[2] != status || !strings.Contains(m[3], text) {
			t.Errorf("line %d = %q, want step %s %s with %q", i+1, lines[i], name, status, text)
		}
	}
	prefix := "PASS  "
	if code != 0 {
		prefix = fmt.Sprintf("FAIL  exit %d: ", code)
	}
	if summary := lines[len(steps)]; !strings.HasPrefix(summary, prefix) {
		t.Errorf("summary %q, want it to start with %q", summary, prefix)
	}
}

// authenticator hands out TOTP codes (SHA1, 6 digits, 30 s) as an
// authenticator app would over time. The server accepts each time step
// once, within ±1 step of its clock, so each code is for a step after the
// last one used: the current step, else the next, else (both used) it
// waits for the clock. A code for the current or next step stays valid for
// at least 30 s, ample for a loaded machine.
type authenticator struct {
	secret string
	last   int64
}

func (a *authenticator) code(t testing.TB) string {
	t.Helper()
	for {
		cur := time.Now().Unix() / 30
		if step := max(a.last+1, cur); step <= cur+1 {
			a.last = step
			code, err := totp.GenerateCodeCustom(a.secret, time.Unix(step*30, 0),
				totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
			if err != nil {
				t.Fatal(err)
			}
			return code
		}
		time.Sleep(time.Until(time.Unix((cur+1)*30, 0)) + 50*time.Millisecond)
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// randomKey is a strong key as ENCRYPTION_KEY and SECRET_KEY take it.
func randomKey() string { return base64.StdEncoding.EncodeToString(randomBytes(32)) }

const alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomText is n random letters and digits (a password, a Binance key).
func randomText(n int) string {
	b := randomBytes(n)
	for i := range b {
		b[i] = alphanumeric[int(b[i])%len(alphanumeric)]
	}
	return string(b)
}
