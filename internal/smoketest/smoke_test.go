package smoketest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Canary values: none of them may ever show in the script's output or on a
// command line it runs.
const (
	canaryPassword = "pw-CANARY-7c1e9f"
	canaryToken    = "tok.CANARY-TOKEN-4b2d8a"
	canaryKey      = "key-CANARY-0a9b8c7d"
	canarySecret   = "sec-CANARY-5e6f7a8b"
)

var canaries = []string{canaryPassword, canaryToken, canaryKey, canarySecret}

type result struct {
	stdout, stderr string
	argv           string // every curl command line the script ran
	code           int
	elapsed        time.Duration
}

// stepLine is the one line each step prints.
var stepLine = regexp.MustCompile(`^(health|login|secrets|dry-run|binance|ibkr|audit) +(OK|FAIL|SKIP) +\d+ms`)

// run runs scripts/smoke_prod.sh against srvURL with only the given
// environment (never the test's own: a CI runner's GITHUB_ACTIONS must not
// leak in), with curl wrapped to log its command lines.
func run(t *testing.T, srvURL string, env map[string]string, shell ...string) result {
	t.Helper()
	script, err := filepath.Abs("../../scripts/smoke_prod.sh")
	if err != nil {
		t.Fatal(err)
	}
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required by scripts/smoke_prod.sh:", err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is required by scripts/smoke_prod.sh:", err)
	}
	dir := t.TempDir()
	argvLog := filepath.Join(dir, "argv.log")
	wrapper := "#!/bin/sh\nprintf '%s\\n' \"$*\" >>'" + argvLog + "'\nexec '" + curl + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "curl"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	args := append(shell, script)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = []string{"PATH=" + dir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	if srvURL != "" {
		cmd.Env = append(cmd.Env, "BASE_URL="+srvURL)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	argv, _ := os.ReadFile(argvLog)
	res.argv = string(argv)
	t.Logf("exit %d in %v\n%s%s", res.code, res.elapsed, res.stdout, res.stderr)
	checkNoCanary(t, res)
	return res
}

// checkNoCanary: no secret in the output (but the ::add-mask:: line, which
// is how GitHub is told to hide the token) and none on a command line.
func checkNoCanary(t *testing.T, r result) {
	t.Helper()
	var shown []string
	for _, l := range strings.Split(r.stdout+r.stderr, "\n") {
		if !strings.HasPrefix(l, "::add-mask::") {
			shown = append(shown, l)
		}
	}
	out := strings.Join(shown, "\n")
	for _, c := range canaries {
		if strings.Contains(out, c) {
			t.Errorf("output shows the canary %q", c)
		}
		if strings.Contains(r.argv, c) {
			t.Errorf("a curl command line (visible in ps) holds the canary %q:\n%s", c, r.argv)
		}
	}
}

func login() map[string]string {
	return map[string]string{"EMAIL": "operator@example.com", "PASSWORD": canaryPassword}
}

func with(env map[string]string, kv ...string) map[string]string {
	for i := 0; i < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

func okStub() *stub {
	return &stub{password: canaryPassword, token: canaryToken, binanceSecret: true, ibkrSecret: true}
}

// line returns the output line of step name.
func line(t *testing.T, r result, name string) string {
	t.Helper()
	for _, l := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	t.Fatalf("no line for step %s", name)
	return ""
}

func wantStep(t *testing.T, r result, name, status, contains string) {
	t.Helper()
	l := line(t, r, name)
	if m := stepLine.FindStringSubmatch(l); m == nil || m[2] != status || !strings.Contains(l, contains) {
		t.Errorf("step %s: got %q, want %s containing %q", name, l, status, contains)
	}
}

func wantExit(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d", r.code, code)
	}
}

// TestAllStepsPass is not parallel: it also times the whole checklist.
func TestAllStepsPass(t *testing.T) {
	s := okStub()
	s.seed()
	srv := s.start(t)
	r := run(t, srv.URL, login(), "bash")
	wantExit(t, r, 0)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 8 {
		t.Fatalf("%d lines, want 7 steps and a summary", len(lines))
	}
	for i, name := range []string{"health", "login", "secrets", "dry-run", "binance", "ibkr", "audit"} {
		if m := stepLine.FindStringSubmatch(lines[i]); m == nil || m[1] != name || m[2] != "OK" {
			t.Errorf("line %d = %q, want %s OK", i+1, lines[i], name)
		}
	}
	if !strings.HasPrefix(lines[7], "PASS ") {
		t.Errorf("summary %q", lines[7])
	}
	wantStep(t, r, "audit", "OK", "4 events")
	if r.stderr != "" {
		t.Errorf("stderr: %s", r.stderr)
	}
	if r.elapsed > 10*time.Second {
		t.Errorf("the checklist took %v, want under 10 s", r.elapsed)
	}
	// One Idempotency-Key per request, all different.
	seen := map[string]bool{}
	for _, path := range []string{"/ops/execution/prepare", "/ops/execution/binance/test-order", "/ops/execution/ibkr/test-order"} {
		keys := s.keys[path]
		if len(keys) != 1 || !regexp.MustCompile(`^[0-9a-f-]{36}$`).MatchString(keys[0]) || seen[keys[0]] {
			t.Errorf("%s: Idempotency-Keys %q, want one fresh uuid", path, keys)
		}
		seen[keys[0]] = true
	}
	if len(s.logins) != 1 || s.logins[0].Get("username") != "operator@example.com" || s.logins[0].Has("otp") {
		t.Errorf("logins %v", len(s.logins))
	}
	if len(s.puts) != 0 {
		t.Error("stored a Binance secret though none was given")
	}
	// A second run uses new keys: a retry after a redeploy tests again.
	run(t, srv.URL, login())
	if keys := s.keys["/ops/execution/prepare"]; len(keys) != 2 || keys[0] == keys[1] {
		t.Errorf("prepare keys over two runs: %q", keys)
	}
}

func TestStoresTheBinanceSecretFirst(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.binanceSecret = false
	srv := s.start(t)
	r := run(t, srv.URL, with(login(), "BINANCE_API_KEY", canaryKey, "BINANCE_API_SECRET", canarySecret))
	wantExit(t, r, 0)
	wantStep(t, r, "secrets", "OK", "stored now")
	if len(s.puts) != 1 || s.puts[0]["api_key"] != canaryKey || s.puts[0]["api_secret"] != canarySecret {
		t.Errorf("PUT bodies: %d", len(s.puts))
	}
	reqs := s.loggedRequests()
	if reqs[2] != "PUT /users/exchange-secrets/BINANCE" || reqs[3] != "GET /users/exchange-secrets" {
		t.Errorf("requests %q: want the PUT before the GET", reqs)
	}
}

func TestBinanceMissingFailsSecrets(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.binanceSecret = false
	r := run(t, s.start(t).URL, login())
	wantExit(t, r, 5)
	wantStep(t, r, "secrets", "FAIL", "BINANCE secret is missing")
}

func TestBinanceError(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.binanceRejects = true
	srv := s.start(t)

	r := run(t, srv.URL, login())
	wantExit(t, r, 7)
	wantStep(t, r, "binance", "FAIL", "HTTP 502 binance_rejected: Invalid API-key, IP, or permissions for action. (exchange code -2015)")
	wantStep(t, r, "ibkr", "OK", "success")
	wantStep(t, r, "audit", "OK", "")
	if !strings.Contains(r.stdout, "FAIL  exit 7: binance failed") {
		t.Error("summary does not name the failed step")
	}

	r = run(t, srv.URL, with(login(), "ALLOW_BINANCE_TEST_ERROR", "true"))
	wantExit(t, r, 0)
	wantStep(t, r, "binance", "OK", "allowed error: binance_rejected")
	wantStep(t, r, "audit", "OK", "4 events") // execution.binance.test_order.error among them
}

func TestIBKRSecret(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.ibkrSecret = false
	srv := s.start(t)

	r := run(t, srv.URL, with(login(), "REQUIRE_IBKR_SECRET", "true"))
	wantExit(t, r, 5)
	wantStep(t, r, "secrets", "FAIL", "IBKR secret is missing (REQUIRE_IBKR_SECRET=true)")

	// Not required: reported, and the IBKR test order's refusal is allowed.
	r = run(t, srv.URL, login())
	wantExit(t, r, 0)
	wantStep(t, r, "secrets", "OK", "IBKR missing (not required)")
	wantStep(t, r, "ibkr", "OK", "allowed error: exchange_secret_missing")
	wantStep(t, r, "audit", "OK", "3 events")
}

func TestTokenSkipsLogin(t *testing.T) {
	t.Parallel()
	s := okStub()
	srv := s.start(t)
	r := run(t, srv.URL, map[string]string{"TOKEN": canaryToken})
	wantExit(t, r, 0)
	wantStep(t, r, "login", "SKIP", "TOKEN given")
	if n := s.count("POST /auth/login"); n != 0 {
		t.Errorf("%d logins with TOKEN set", n)
	}
	wantStep(t, r, "audit", "OK", "3 events") // no auth.login.success expected

	r = run(t, srv.URL, map[string]string{"TOKEN": "tok.CANARY-TOKEN-expired"})
	wantExit(t, r, 4)
	wantStep(t, r, "login", "FAIL", "TOKEN rejected: HTTP 401 invalid_token")
}

func TestOTP(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.otp = "492039"
	srv := s.start(t)

	r := run(t, srv.URL, login())
	wantExit(t, r, 4)
	wantStep(t, r, "login", "FAIL", "HTTP 401 otp_required: this account needs its one-time code (set OTP")

	r = run(t, srv.URL, with(login(), "OTP", "492039"))
	wantExit(t, r, 0)
	if last := s.logins[len(s.logins)-1]; last.Get("otp") != "492039" || last.Get("password") != canaryPassword {
		t.Errorf("login form without the code: otp %q", last.Get("otp"))
	}
}

func TestWrongPassword(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.echoPassword = true // the reason printed must still not show it
	r := run(t, s.start(t).URL, with(login(), "PASSWORD", canaryPassword+"-wrong"))
	wantExit(t, r, 4)
	wantStep(t, r, "login", "FAIL", "HTTP 401 invalid_credentials: wrong password [masked]")
	for _, step := range []string{"secrets", "dry-run", "binance", "ibkr", "audit"} {
		wantStep(t, r, step, "SKIP", "no token")
	}
}

func TestGitHubActionsMasksTheToken(t *testing.T) {
	t.Parallel()
	s := okStub()
	r := run(t, s.start(t).URL, with(login(), "GITHUB_ACTIONS", "true"))
	wantExit(t, r, 0)
	// The token is masked as soon as the script has it, before the login line.
	mask := strings.Index(r.stdout, "::add-mask::"+canaryToken+"\n")
	if mask < 0 || mask > strings.Index(r.stdout, "\nlogin ") || strings.Count(r.stdout, canaryToken) != 1 {
		t.Errorf("want ::add-mask:: with the token before the login line, and the token nowhere else:\n%s", r.stdout)
	}
}

// TestNoTrace: bash -x must not show the secrets (the script turns tracing off).
func TestNoTrace(t *testing.T) {
	t.Parallel()
	s := okStub()
	r := run(t, s.start(t).URL, with(login(), "BINANCE_API_KEY", canaryKey, "BINANCE_API_SECRET", canarySecret), "bash", "-x")
	wantExit(t, r, 0)
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.healthStatus = 503
	r := run(t, s.start(t).URL, login())
	wantExit(t, r, 3)
	wantStep(t, r, "health", "FAIL", "HTTP 503, status degraded, database unreachable")
	wantStep(t, r, "login", "SKIP", "server not healthy")
	if n := len(s.loggedRequests()); n != 1 {
		t.Errorf("%d requests after a failed health check, want only it", n)
	}
}

func TestRejectedDryRun(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.decision = "rejected"
	r := run(t, s.start(t).URL, login())
	wantExit(t, r, 6)
	wantStep(t, r, "dry-run", "FAIL", "rejected under model2: RISK_MAX_NOTIONAL,EXCHANGE_LOT_SIZE")
}

// TestAuditOnlyCountsThisRun: events of an earlier run, an hour old or of
// another execution in the same second, do not stand in for a missing one.
func TestAuditOnlyCountsThisRun(t *testing.T) {
	t.Parallel()
	for _, lost := range []string{"auth.login.success", "execution.prepare", "execution.ibkr.test_order.success"} {
		t.Run(lost, func(t *testing.T) {
			t.Parallel()
			s := okStub()
			s.seed()
			s.skipEvent = lost
			r := run(t, s.start(t).URL, login())
			wantExit(t, r, 9)
			wantStep(t, r, "audit", "FAIL", "missing since the run began: "+lost)
		})
	}
}

// TestAuditWaitsForTheProjection: events that take a moment to show still count.
func TestAuditWaitsForTheProjection(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.auditLag = 700 * time.Millisecond
	r := run(t, s.start(t).URL, login())
	wantExit(t, r, 0)
}

// TestAuditProjectionWait: a projection further behind than the default
// wait (3 s) fails the audit step, unless PROJECTION_WAIT_SECONDS allows for it.
func TestAuditProjectionWait(t *testing.T) {
	t.Parallel()
	for wait, code := range map[string]int{"": 9, "30": 0} {
		t.Run("PROJECTION_WAIT_SECONDS="+wait, func(t *testing.T) {
			t.Parallel()
			s := okStub()
			s.auditLag = 12 * time.Second
			env := login()
			if wait != "" {
				env["PROJECTION_WAIT_SECONDS"] = wait
			}
			r := run(t, s.start(t).URL, env)
			wantExit(t, r, code)
		})
	}
}

// TestSecretsStatusCatchingUp: the secrets status answering 503 while it
// catches up with the key just stored is asked again, within
// PROJECTION_WAIT_SECONDS.
func TestSecretsStatusCatchingUp(t *testing.T) {
	t.Parallel()
	for wait, code := range map[string]int{"": 0, "0": 5} {
		t.Run("PROJECTION_WAIT_SECONDS="+wait, func(t *testing.T) {
			t.Parallel()
			s := okStub()
			s.binanceSecret = false
			s.secretsBehind = 1
			env := with(login(), "BINANCE_API_KEY", canaryKey, "BINANCE_API_SECRET", canarySecret)
			if wait != "" {
				env["PROJECTION_WAIT_SECONDS"] = wait
			}
			r := run(t, s.start(t).URL, env)
			wantExit(t, r, code)
			if code == 0 {
				wantStep(t, r, "secrets", "OK", "BINANCE configured (stored now)")
			} else {
				wantStep(t, r, "secrets", "FAIL", "HTTP 503 unavailable: the secrets status is still catching up")
			}
		})
	}
}

// TestRetryKeepsTheKey: a prepare whose answer is lost is sent once more with
// the same Idempotency-Key, so the server answers it without deciding again.
func TestRetryKeepsTheKey(t *testing.T) {
	t.Parallel()
	s := okStub()
	s.dropFirst = "/ops/execution/prepare"
	r := run(t, s.start(t).URL, login())
	wantExit(t, r, 0)
	keys := s.keys["/ops/execution/prepare"]
	if len(keys) != 2 || keys[0] != keys[1] {
		t.Errorf("prepare Idempotency-Keys %q: want the same key twice", keys)
	}
	n := 0
	for _, e := range s.events {
		if e.Type == "execution.prepare" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d execution.prepare events, want 1", n)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	s := okStub()
	url := s.start(t).URL
	for name, c := range map[string]struct {
		url string
		env map[string]string
	}{
		"no BASE_URL":         {"", login()},
		"no PASSWORD":         {url, map[string]string{"EMAIL": "operator@example.com"}},
		"bad boolean":         {url, with(login(), "ALLOW_BINANCE_TEST_ERROR", "yes")},
		"half a Binance pair": {url, with(login(), "BINANCE_API_KEY", canaryKey)},
		"bad projection wait": {url, with(login(), "PROJECTION_WAIT_SECONDS", "3s")},
	} {
		r := run(t, c.url, c.env)
		if r.code != 2 || !strings.Contains(r.stderr, "smoke_prod.sh: ") {
			t.Errorf("%s: exit %d, stderr %q; want 2 and a message", name, r.code, r.stderr)
		}
	}
	if len(s.loggedRequests()) != 0 {
		t.Error("a usage error sent requests")
	}
}
