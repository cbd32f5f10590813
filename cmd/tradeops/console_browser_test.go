package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/tradeops/tradeops/internal/browsertest"
	"github.com/tradeops/tradeops/internal/fakebinance"
)

// chromium is the test run's one browser, started by the first test that
// needs it and stopped by TestMain.
var chromium browsertest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	chromium.Close()
	os.Exit(code)
}

// consoleEnv is one serve (real run(), fake Binance) shared by the console's
// browser tests; each subtest has its own users and its own tab.
type consoleEnv struct {
	browser *browsertest.Browser
	base    string
	fake    *fakebinance.Server
}

const consolePassword = "correct horse battery staple"

// TestConsole drives /console/ in a real headless Chromium against serve:
// every subtest fails on a console error, an uncaught exception, a CSP
// violation, a failed or off-origin request, or an HTTP error it did not
// provoke (internal/browsertest).
func TestConsole(t *testing.T) {
	start := time.Now()
	chromium.Prepare() // starts while the server does
	fake := fakebinance.New(fakebinance.Options{T: t})
	d := newDeployment(t)
	d.env = map[string]string{"BINANCE_TESTNET_BASE_URL": fake.URL(), "RISK_PROFILE_LOOSE_EMAIL": "loose@example.com", "LOG_LEVEL": "warn"}
	if _, err := d.cli("", nil, "migrate"); err != nil {
		t.Fatal(err)
	}
	// Users exist before serve starts, which binds the loose profile.
	users := map[string]string{"admin@example.com": "admin", "op@example.com": "operator",
		"exec@example.com": "operator", "audit@example.com": "operator", "loose@example.com": "operator"}
	errs := make(chan error, len(users))
	for email, role := range users {
		go func() {
			_, err := d.cli(consolePassword, nil, "users", "create", "--email", email, "--role", role, "--password-stdin")
			errs <- err
		}()
	}
	for range users {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	d.serve(testEncryptionKey)
	t.Logf("serve ready after %v", time.Since(start).Round(time.Millisecond))
	env := &consoleEnv{browser: chromium.Get(t), base: d.base, fake: fake}
	t.Logf("browser ready after %v", time.Since(start).Round(time.Millisecond))

	// Each has its own user and tab: they run side by side, all at once
	// (t.Parallel would hold them to -parallel, the number of CPUs; they
	// mostly wait on the browser and the server).
	var wg sync.WaitGroup
	for name, test := range map[string]func(*testing.T){
		"SecurityHeadersAndCSPViolationsCaught": env.testSecurity,
		"OperatorLoginTwoFactorNoAdminView":     env.testOperator,
		"SecretsExecutionTimeline":              env.testExecution,
		"AuditPagingFilterCSV":                  env.testAudit,
	} {
		wg.Go(func() { t.Run(name, test) })
	}
	wg.Wait()
	// The admin's comparison counts everyone's orders: after the others.
	t.Run("AdminChartTableAuditProjections", env.testAdmin)
	t.Logf("done after %v", time.Since(start).Round(time.Millisecond))
}

// open starts a tab on the console's login view.
func (e *consoleEnv) open(t *testing.T) *browsertest.Tab {
	tab := e.browser.Tab(t, e.base)
	tab.Do(chromedp.Navigate(e.base + "/console/"))
	tab.WaitFor(`document.getElementById('view-login').checkVisibility()`, 10*time.Second, "document.body.innerText")
	return tab
}

// login fills the login form and waits for the account view, or for the
// error when wantCode is set.
func login(t *testing.T, tab *browsertest.Tab, email, otp, wantCode string) {
	t.Helper()
	tab.Do(
		fill("login-username", email),
		fill("login-password", consolePassword),
		fill("login-otp", otp),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)),
	)
	if wantCode != "" {
		waitError(t, tab, wantCode)
		return
	}
	tab.WaitFor(fmt.Sprintf(`document.getElementById('view-account').checkVisibility() && document.getElementById('me-email').textContent === %q`, email),
		10*time.Second, "document.body.innerText")
}

// fill sets a form field's value as typing would (input and change events).
func fill(id, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const e = document.getElementById(%q);
		e.value = %q;
		e.dispatchEvent(new Event('input', {bubbles: true}));
		e.dispatchEvent(new Event('change', {bubbles: true}));
	})()`, id, value))
}

// waitError waits for the error banner to show the API's code.
func waitError(t *testing.T, tab *browsertest.Tab, code string) {
	t.Helper()
	tab.WaitFor(fmt.Sprintf(`document.getElementById('error').checkVisibility() && document.getElementById('error-code').textContent.startsWith(%q)`, code),
		10*time.Second, "document.getElementById('error').innerText")
	if msg := tab.Text("#error-message"); msg == "" {
		t.Fatalf("error %s shown without its message", code)
	}
}

// show clicks a view's nav button and waits for the view and for the
// console to be idle (its loads done).
func show(t *testing.T, tab *browsertest.Tab, view string) {
	t.Helper()
	tab.Do(chromedp.Click(chromedp.CSS(fmt.Sprintf(`#nav button[data-view=%q]`, view))))
	idle(t, tab, "view-"+view)
}

// idle waits until the element with id is visible and no work is in
// progress.
func idle(t *testing.T, tab *browsertest.Tab, id string) {
	t.Helper()
	tab.WaitFor(fmt.Sprintf(`document.getElementById(%q).checkVisibility() && !document.getElementById('progress').checkVisibility()`, id),
		15*time.Second, "document.getElementById('progress-text').textContent + ' | ' + document.getElementById('error').innerText")
}

// usable checks the visible view: every control has a label (or text), is
// reachable by keyboard, and nothing is wider than the window.
func usable(t *testing.T, tab *browsertest.Tab) {
	t.Helper()
	bad := browsertest.Eval[[]string](tab, `(() => {
		const bad = [];
		for (const c of document.querySelectorAll('input, select, textarea, button')) {
			if (!c.checkVisibility()) continue;
			const name = c.id || c.outerHTML.slice(0, 60);
			if (c.tagName === 'BUTTON' ? !(c.textContent.trim() || c.getAttribute('aria-label')) : c.labels.length === 0) bad.push('no label: ' + name);
			if (c.tabIndex < 0) bad.push('not reachable by keyboard: ' + name);
		}
		if (document.documentElement.scrollWidth > window.innerWidth) bad.push('wider than the window: ' + document.documentElement.scrollWidth + ' > ' + window.innerWidth);
		return bad;
	})()`)
	if len(bad) > 0 {
		t.Fatalf("not usable: %q", bad)
	}
}

// apiCall is the Go side's own call to the API (checked against
// api/openapi.yaml), to compare what the console shows with the API.
func (e *consoleEnv) apiCall(t *testing.T, method, path, token, body string) map[string]any {
	t.Helper()
	resp, decoded := call(t, method, e.base+path, token, body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, decoded)
	}
	return decoded
}

func (e *consoleEnv) token(t *testing.T, email string) string {
	t.Helper()
	return e.apiCall(t, http.MethodPost, "/auth/login", "", "username="+url.QueryEscape(email)+"&password="+url.QueryEscape(consolePassword))["access_token"].(string)
}

// The console's answers carry the CSP and the other headers; the CSP
// blocks an inline script, an inline style and an HTML sink, and the tab
// watcher reports each violation (so every other test would fail on one).
func (e *consoleEnv) testSecurity(t *testing.T) {
	resp, err := http.Get(e.base + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Security-Policy"); !strings.Contains(got, "default-src 'self'") || !strings.Contains(got, "frame-ancestors 'none'") ||
		strings.Contains(got, "unsafe-inline") || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("console headers: %v", resp.Header)
	}

	tab := e.open(t)
	tab.NoProblems()
	// An inline script inserted through the DOM: Trusted Types refuse its
	// text first (script-src would refuse it next).
	ran := browsertest.Eval[bool](tab, `(() => {
		const s = document.createElement('script');
		s.append(document.createTextNode('window.inlineRan = true'));
		document.body.append(s);
		return window.inlineRan === true;
	})()`)
	if ran {
		t.Fatal("an inline script inserted through the DOM ran")
	}
	tab.WaitFor(`true`, time.Second, "")
	if p := tab.TakeProblems(); !containsAll(strings.Join(p, "\n"), "CSP violation: require-trusted-types-for") {
		t.Fatalf("the inline script's CSP violation was not caught: %q", p)
	}
	// A request to another origin: refused by the CSP (connect-src falls
	// back to default-src 'self'), and reported.
	sent := browsertest.Eval[bool](tab, `fetch('http://127.0.0.2:9/').then(() => true, () => false)`)
	if sent {
		t.Fatal("a request to another origin was answered")
	}
	tab.WaitFor(`true`, time.Second, "")
	if p := tab.TakeProblems(); !containsAll(strings.Join(p, "\n"), "CSP violation: connect-src") {
		t.Fatalf("the cross-origin request's CSP violation was not caught: %q", p)
	}
	styled := browsertest.Eval[string](tab, `(() => {
		const p = document.createElement('p');
		document.body.append(p);
		p.setAttribute('style', 'color: rgb(1, 2, 3)');
		return getComputedStyle(p).color;
	})()`)
	if styled == "rgb(1, 2, 3)" {
		t.Fatal("an inline style attribute applied")
	}
	threw := browsertest.Eval[bool](tab, `(() => {
		try { document.createElement('div').innerHTML = '<b>x</b>'; return false; } catch (e) { return e instanceof TypeError; }
	})()`)
	if !threw {
		t.Fatal("assigning a string to innerHTML did not throw (Trusted Types)")
	}
	tab.WaitFor(`true`, time.Second, "")
	if p := tab.TakeProblems(); !containsAll(strings.Join(p, "\n"), "style-src", "require-trusted-types-for") {
		t.Fatalf("the style and Trusted Types violations were not caught: %q", p)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// An operator: logs in by keyboard alone, sees the account with the
// session's expiry (first paint measured), no admin view at any width;
// a 401 returns to the login view; enrols 2FA from the console (QR on a
// canvas) and logs in again with a real TOTP code.
func (e *consoleEnv) testOperator(t *testing.T) {
	tab := e.open(t)
	const email = "op@example.com"
	// The page focuses the email field; Tab moves on, Enter submits.
	tab.Do(chromedp.KeyEvent(email + "\t" + consolePassword + "\r"))
	tab.WaitFor(`document.getElementById('view-account').checkVisibility() && document.getElementById('me-role').textContent === 'operator'`,
		10*time.Second, "document.body.innerText")
	tab.WaitFor(`performance.getEntriesByName('console:first-paint').length > 0`, 5*time.Second, "")
	paint := browsertest.Eval[[]float64](tab, `['console:login-submit', 'console:login-answered', 'console:first-paint'].map((n) => performance.getEntriesByName(n)[0].startTime)`)
	t.Logf("first paint after login: %.1f ms after the login answer (%.1f ms after submit, the password hash included)", paint[2]-paint[1], paint[2]-paint[0])
	if got := tab.Text("#me-profile") + "|" + tab.Text("#me-2fa"); got != "model2|not enabled" {
		t.Fatalf("account shows %s", got)
	}
	if left := tab.Text("#session-left"); !strings.Contains(left, "min") || tab.Text("#session-expiry") == "" {
		t.Fatalf("expiry not shown: %q", left)
	}
	adminShown := browsertest.Eval[bool](tab, `[...document.querySelectorAll('[data-admin], #view-risk, #view-admin-audit, #view-projections')].some((e) => e.checkVisibility())`)
	if adminShown {
		t.Fatal("an operator sees an admin view or its button")
	}
	usable(t, tab)
	tab.Do(chromedp.EmulateViewport(375, 740))
	for _, v := range []string{"account", "secrets", "execution", "audit"} {
		show(t, tab, v)
		usable(t, tab)
	}
	tab.Do(chromedp.ResetViewport())
	for _, r := range tab.Requests() {
		if p := strings.SplitN(r, " ", 2)[1]; strings.HasPrefix(p, "/ops/audit?") || strings.HasPrefix(p, "/ops/risk") || p == "/metrics" {
			t.Fatalf("an operator's console called an admin endpoint: %s", r)
		}
	}

	// Logging out elsewhere revokes this session too: the next call is a
	// 401 and the console returns to the login view.
	e.apiCall(t, http.MethodPost, "/auth/logout", e.token(t, email), "")
	tab.Expect(http.MethodGet, "/users/me", http.StatusUnauthorized)
	tab.Do(chromedp.Click(chromedp.CSS(`#nav button[data-view="account"]`)))
	tab.WaitFor(`document.getElementById('view-login').checkVisibility() && document.getElementById('notice').textContent.includes('session ended')`,
		5*time.Second, "document.body.innerText")
	waitError(t, tab, "unauthorized")
	login(t, tab, email, "", "")

	// Enrol: the otpauth URL as text and as a QR code drawn on the canvas.
	tab.Do(chromedp.Click(chromedp.ID("twofa-setup")))
	tab.WaitFor(`document.getElementById('twofa-enrol').checkVisibility() && document.getElementById('twofa-url').textContent.startsWith('otpauth://')`,
		5*time.Second, "document.body.innerText")
	dark := browsertest.Eval[int](tab, `(() => {
		const c = document.getElementById('twofa-qr');
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let n = 0;
		for (let i = 0; i < d.length; i += 4) if (d[i + 3] === 255 && d[i] < 64) n++;
		return n;
	})()`)
	if dark < 2000 {
		t.Fatalf("the QR canvas has %d dark pixels", dark)
	}
	u, err := url.Parse(tab.Text("#twofa-url"))
	if err != nil || u.Query().Get("secret") != tab.Text("#twofa-secret") {
		t.Fatalf("otpauth URL %q, secret %q", tab.Text("#twofa-url"), tab.Text("#twofa-secret"))
	}
	secret := u.Query().Get("secret")
	enabledAt := time.Now()
	code, err := totp.GenerateCode(secret, enabledAt)
	if err != nil {
		t.Fatal(err)
	}
	tab.Do(fill("twofa-enable-otp", code), chromedp.Click(chromedp.CSS(`#twofa-enable-form button`)))
	tab.WaitFor(`document.getElementById('view-login').checkVisibility() && document.getElementById('notice').textContent.includes('enabled')`,
		5*time.Second, "document.body.innerText")

	// Without the code the API asks for it; with the next step's code (this
	// one was used) the login succeeds and the account shows 2FA on.
	tab.Expect(http.MethodPost, "/auth/login", http.StatusUnauthorized)
	login(t, tab, email, "", "otp_required")
	next, err := totp.GenerateCode(secret, enabledAt.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	login(t, tab, email, next, "")
	if got := tab.Text("#me-2fa"); got != "enabled" {
		t.Fatalf("2FA shows %q after enrolment", got)
	}
}

// Configure a Binance secret the fake exchange knows and an IBKR account,
// run the dry run (every check shown) and both test orders, and see their
// events appear in the timeline; a refused input shows the API's code.
func (e *consoleEnv) testExecution(t *testing.T) {
	tab := e.open(t)
	login(t, tab, "exec@example.com", "", "")
	show(t, tab, "secrets")
	key, secret := alnum(64), alnum(64)
	e.fake.AddHMACKey(key, secret)
	tab.Do(fill("binance-key", key), fill("binance-secret", secret),
		chromedp.Click(chromedp.CSS(`#binance-form button`)))
	tab.WaitFor(`[...document.querySelectorAll('#secrets-table tbody tr')].some((r) => r.cells[0].textContent === 'BINANCE' && r.cells[1].textContent === 'configured')`,
		10*time.Second, "document.getElementById('secrets-table').innerText")
	if hint := browsertest.Eval[string](tab, `document.querySelector('#secrets-table tbody tr').cells[2].textContent`); hint != "****"+key[60:] {
		t.Fatalf("Binance key hint %q", hint)
	}
	if browsertest.Eval[bool](tab, `document.body.innerText.includes(`+strconv.Quote(secret)+`)`) {
		t.Fatal("the secret is still in the page")
	}
	tab.Do(fill("ibkr-account", "DU1234567"), chromedp.Click(chromedp.CSS(`#ibkr-form button`)))
	tab.WaitFor(`[...document.querySelectorAll('#secrets-table tbody tr')].every((r) => r.cells[1].textContent === 'configured')`,
		10*time.Second, "document.getElementById('secrets-table').innerText")

	show(t, tab, "execution")
	tab.Expect(http.MethodPost, "/ops/execution/prepare", http.StatusBadRequest)
	tab.Do(fill("order-qty", "-1"), chromedp.Click(chromedp.ID("order-prepare")))
	waitError(t, tab, "invalid_quantity")
	tab.Do(fill("order-qty", "0.01"), chromedp.Click(chromedp.ID("order-prepare")))
	tab.WaitFor(`document.getElementById('order-result-title').textContent === 'Dry run: accepted'`, 10*time.Second, "document.body.innerText")
	checks := browsertest.Eval[[][]string](tab, `[...document.querySelectorAll('#checks-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))`)
	if len(checks) < 3 {
		t.Fatalf("checks shown: %v", checks)
	}
	for _, c := range checks {
		if c[0] == "" || c[1] != "yes" {
			t.Fatalf("check row %v", c)
		}
	}
	if shadow := browsertest.Eval[string](tab, `[...document.querySelectorAll('#order-facts dd')].at(-1).textContent`); shadow != "loose: accepted" {
		t.Fatalf("shadow decision %q", shadow)
	}
	tab.Do(chromedp.Click(chromedp.ID("order-binance")))
	tab.WaitFor(`document.getElementById('order-result-title').textContent === 'Binance test order: success' && !document.getElementById('progress').checkVisibility()`,
		10*time.Second, "document.body.innerText")
	tab.Do(fill("order-symbol", "AAPL"), fill("order-qty", "1"), chromedp.Click(chromedp.ID("order-ibkr")))
	tab.WaitFor(`document.getElementById('order-result-title').textContent === 'IBKR test order: success' && !document.getElementById('progress').checkVisibility()`,
		10*time.Second, "document.body.innerText")
	if n := e.fake.AcceptedTestOrders(); n != 1 {
		t.Fatalf("the fake exchange accepted %d test orders", n)
	}

	show(t, tab, "audit")
	// Newest first: each test order is decided (execution.prepare) before
	// it is sent.
	want := []string{"execution.ibkr.test_order.success", "execution.prepare", "execution.binance.test_order.success", "execution.prepare", "execution.prepare"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		types := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#audit-table tbody tr')].map((r) => r.cells[1].textContent)`)
		if len(types) >= len(want) && strings.Join(types[:len(want)], ",") == strings.Join(want, ",") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("timeline shows %v, want it to start with %v", types, want)
		}
		tab.Do(chromedp.Click(chromedp.CSS(`#audit-form button`)))
		idle(t, tab, "view-audit")
	}
}

// Page the audit by cursor, filter by type and by date, and export what is
// shown as CSV.
func (e *consoleEnv) testAudit(t *testing.T) {
	const email = "audit@example.com"
	token := e.token(t, email)
	for i := range 12 {
		e.apiCall(t, http.MethodPost, "/ops/execution/prepare", token, fmt.Sprintf(`{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":"0.00%d"}`, i+1))
	}
	// 12 prepares and the login, visible to the API first.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if n := len(e.apiCall(t, http.MethodGet, "/ops/audit/me?limit=100", token, "")["events"].([]any)); n >= 13 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the audit log did not catch up")
		}
	}
	tab := e.open(t)
	login(t, tab, email, "", "")
	show(t, tab, "audit")
	rows := func() [][]string {
		return browsertest.Eval[[][]string](tab, `[...document.querySelectorAll('#audit-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))`)
	}
	// The API's timeline once it holds the console's own login too (14).
	var api []any
	for deadline := time.Now().Add(10 * time.Second); len(api) < 14; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the audit log did not catch up with the console's login: %d events", len(api))
		}
		api = e.apiCall(t, http.MethodGet, "/ops/audit/me?limit=1000", token, "")["events"].([]any)
	}
	tab.Do(fill("audit-limit", "10"), chromedp.Click(chromedp.CSS(`#audit-form button`)))
	idle(t, tab, "view-audit")
	if got := rows(); len(got) != 10 {
		t.Fatalf("first page: %d rows", len(got))
	}
	tab.Do(chromedp.Click(chromedp.ID("audit-more")))
	idle(t, tab, "view-audit")
	got := rows()
	if len(got) != min(20, len(api)) {
		t.Fatalf("after load more: %d rows, the API has %d", len(got), len(api))
	}
	for i, ev := range api[:len(got)] {
		m := ev.(map[string]any)
		if got[i][1] != m["type"] || !strings.HasPrefix(strings.ReplaceAll(m["at"].(string), "T", " "), got[i][0]) {
			t.Fatalf("row %d %v, the API's %v %v", i, got[i], m["type"], m["at"])
		}
	}

	tab.Do(fill("audit-type", "execution.prepare"), fill("audit-limit", "50"),
		chromedp.Click(chromedp.CSS(`#audit-form button`)))
	idle(t, tab, "view-audit")
	got = rows()
	if len(got) != 12 {
		t.Fatalf("type filter: %d rows", len(got))
	}
	for _, r := range got {
		if r[1] != "execution.prepare" {
			t.Fatalf("type filter shows %v", r)
		}
	}
	today := time.Now().UTC()
	tab.Do(fill("audit-to", today.AddDate(0, 0, -1).Format(time.DateOnly)), chromedp.Click(chromedp.CSS(`#audit-form button`)))
	idle(t, tab, "view-audit")
	if got := rows(); len(got) != 0 || !strings.Contains(tab.Text("#audit-count"), "0 events") {
		t.Fatalf("up to yesterday: %v, %q", got, tab.Text("#audit-count"))
	}
	tab.Do(fill("audit-to", ""), fill("audit-from", today.Format(time.DateOnly)),
		chromedp.Click(chromedp.CSS(`#audit-form button`)))
	idle(t, tab, "view-audit")
	if got := rows(); len(got) != 12 {
		t.Fatalf("from today: %d rows", len(got))
	}

	dir := t.TempDir()
	if _, err := chromedp.CallBrowser(tab.Ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir}); err != nil {
		t.Fatal(err)
	}
	tab.Do(chromedp.Click(chromedp.ID("audit-csv")))
	var csv []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		matches, _ := filepath.Glob(filepath.Join(dir, "audit-*.csv"))
		if len(matches) == 1 {
			if csv, _ = os.ReadFile(matches[0]); strings.HasSuffix(string(csv), "\r\n") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CSV downloaded: %v", matches)
		}
	}
	lines := strings.Split(strings.TrimSuffix(string(csv), "\r\n"), "\r\n")
	if len(lines) != 13 || !strings.HasPrefix(lines[0], "at,type,") || strings.Count(string(csv), `"execution.prepare"`) != 12 {
		t.Fatalf("CSV: %q", csv)
	}
}

// An admin sees the daily comparison drawn (pixels of both outcomes on the
// canvas) and a table equal to the API's numbers, the audit of one user,
// and the projections' state and lag.
func (e *consoleEnv) testAdmin(t *testing.T) {
	admin := e.token(t, "admin@example.com")
	loose := e.token(t, "loose@example.com")
	// Accepted and rejected under each profile; 0.1 BTC is over model2's
	// quantity limit but not loose's: a divergent decision.
	for _, order := range []struct{ token, qty string }{{loose, "0.01"}, {loose, "0.02"}, {loose, "500"}, {admin, "0.01"}, {admin, "0.1"}} {
		e.apiCall(t, http.MethodPost, "/ops/execution/prepare", order.token, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":"`+order.qty+`"}`)
	}
	day := time.Now().UTC().Format(time.DateOnly)
	path := "/ops/risk/daily-compare?from=" + time.Now().UTC().AddDate(0, 0, -6).Format(time.DateOnly) + "&to=" + day
	var report map[string]any
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		report = e.apiCall(t, http.MethodGet, path, admin, "")
		days := report["days"].([]any)
		last := days[len(days)-1].(map[string]any)["profiles"].(map[string]any)
		l, _ := last["loose"].(map[string]any)
		m, _ := last["model2"].(map[string]any)
		if l != nil && m != nil && l["prepares"].(float64) >= 3 && m["rejected"].(float64) >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daily compare did not catch up: %v", report)
		}
	}

	tab := e.open(t)
	login(t, tab, "admin@example.com", "", "")
	show(t, tab, "risk")
	tab.WaitFor(`document.querySelectorAll('#risk-table tbody tr').length > 0`, 5*time.Second, "")
	// Pixels of the accepted (loose: #5aa469) and rejected (model2:
	// #c0392b) bars on the canvas.
	pixels := browsertest.Eval[map[string]int](tab, `(() => {
		const c = document.getElementById('risk-chart');
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		const near = (i, r, g, b) => Math.abs(d[i] - r) < 8 && Math.abs(d[i + 1] - g) < 8 && Math.abs(d[i + 2] - b) < 8 && d[i + 3] > 200;
		const n = {accepted: 0, rejected: 0};
		for (let i = 0; i < d.length; i += 4) {
			if (near(i, 0x5a, 0xa4, 0x69)) n.accepted++;
			if (near(i, 0xc0, 0x39, 0x2b)) n.rejected++;
		}
		return n;
	})()`)
	if pixels["accepted"] < 200 || pixels["rejected"] < 50 {
		t.Fatalf("chart pixels: %v", pixels)
	}
	// The projection may still be applying the other tests' orders: show
	// again until the table and the API's answer after it agree.
	for deadline := time.Now().Add(10 * time.Second); ; {
		table := browsertest.Eval[[][]string](tab, `[...document.querySelectorAll('#risk-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))`)
		want := dailyCompareRows(e.apiCall(t, http.MethodGet, path, admin, ""))
		if fmt.Sprint(table) == fmt.Sprint(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("table\n%v\nAPI\n%v", table, want)
		}
		tab.Do(chromedp.Click(chromedp.CSS(`#risk-form button`)))
		idle(t, tab, "view-risk")
	}
	if shot := os.Getenv("CONSOLE_SCREENSHOT"); shot != "" { // make screenshot
		png := browsertest.Run(tab, chromedp.CaptureScreenshot())
		if err := os.WriteFile(shot, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", shot)
	}

	// The kill switch, engaged and released from the console: while it is
	// engaged an order is rejected with RISK_KILL_SWITCH.
	tab.WaitFor(`document.getElementById('killswitch-state').textContent.startsWith('Released')`, 5*time.Second, "document.getElementById('killswitch-state').textContent")
	tab.Do(fill("killswitch-reason", "console drill"), chromedp.Click(chromedp.CSS(`#killswitch-engage`)))
	tab.WaitFor(`document.getElementById('killswitch-state').textContent.startsWith('ENGAGED') && document.getElementById('killswitch-state').textContent.includes('(console drill)')`,
		5*time.Second, "document.getElementById('killswitch-state').textContent")
	if ks := e.apiCall(t, http.MethodGet, "/ops/risk/kill-switch", admin, ""); ks["engaged"] != true || ks["reason"] != "console drill" {
		t.Fatalf("kill switch after engaging from the console: %v", ks)
	}
	if r := e.apiCall(t, http.MethodPost, "/ops/execution/prepare", loose, `{"exchange":"BINANCE","symbol":"BTCUSDT","side":"BUY","qty":"0.01"}`); r["decision"] != "rejected" {
		t.Fatalf("prepare while halted: %v", r)
	}
	tab.Do(fill("killswitch-reason", "drill over"), chromedp.Click(chromedp.CSS(`#killswitch-release`)))
	tab.WaitFor(`document.getElementById('killswitch-state').textContent.startsWith('Released since')`, 5*time.Second, "document.getElementById('killswitch-state').textContent")
	if ks := e.apiCall(t, http.MethodGet, "/ops/risk/kill-switch", admin, ""); ks["engaged"] != false {
		t.Fatalf("kill switch after releasing from the console: %v", ks)
	}

	show(t, tab, "admin-audit")
	tab.Do(fill("admin-audit-user", "loose@example.com"), chromedp.Click(chromedp.CSS(`#admin-audit-form button`)))
	idle(t, tab, "view-admin-audit")
	actors := browsertest.Eval[[]string](tab, `[...document.querySelectorAll('#admin-audit-table tbody tr')].map((r) => r.cells[2].textContent)`)
	if len(actors) < 4 {
		t.Fatalf("admin audit for one user: %v", actors)
	}
	for _, a := range actors {
		if strings.HasSuffix(a, "@example.com") && a != "loose@example.com" {
			t.Fatalf("admin audit filtered by user shows actor %q", a)
		}
	}

	show(t, tab, "projections")
	proj := browsertest.Eval[[][]string](tab, `[...document.querySelectorAll('#projections-table tbody tr')].map((r) => [...r.cells].map((c) => c.textContent))`)
	names := map[string]bool{}
	for _, p := range proj {
		names[p[0]] = true
		if p[1] != "live" && p[1] != "catching up" {
			t.Fatalf("projection row %v", p)
		}
		if _, err := strconv.Atoi(p[2]); err != nil {
			t.Fatalf("projection lag %v", p)
		}
	}
	if !names["audit_log"] || !names["daily_risk_compare"] {
		t.Fatalf("projections shown: %v", proj)
	}
	usable(t, tab)
	tab.Do(chromedp.EmulateViewport(375, 740))
	for _, v := range []string{"risk", "admin-audit", "projections"} {
		show(t, tab, v)
		usable(t, tab)
	}
}

// dailyCompareRows is GET /ops/risk/daily-compare as the console's table
// should show it: a row per day and profile.
func dailyCompareRows(report map[string]any) [][]string {
	var rows [][]string
	for _, d := range report["days"].([]any) {
		d := d.(map[string]any)
		for _, name := range []string{"loose", "model2"} {
			p, ok := d["profiles"].(map[string]any)[name].(map[string]any)
			if !ok {
				continue
			}
			to := p["test_orders"].(map[string]any)
			count := func(m any, k string) string { return fmt.Sprint(m.(map[string]any)[k]) }
			rows = append(rows, []string{d["date"].(string), name, fmt.Sprint(p["prepares"]), fmt.Sprint(p["accepted"]), fmt.Sprint(p["rejected"]),
				fmt.Sprint(p["divergent"]), p["notional_requested"].(string), p["notional_accepted"].(string),
				fmt.Sprintf("Binance %s / %s, IBKR %s / %s", count(to["binance"], "ok"), count(to["binance"], "error"), count(to["ibkr"], "ok"), count(to["ibkr"], "error")),
				fmt.Sprint(d["divergent_decisions"])})
		}
	}
	return rows
}
