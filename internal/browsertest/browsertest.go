// Package browsertest drives a real headless Chromium for the console's
// tests (and `make screenshot`) through chromedp: one browser per test run,
// a tab per test, each tab watched for what must never happen in the
// console — a console error, an uncaught exception, a Content-Security-
// Policy violation, a request that failed or left the origin, an HTTP error
// the test did not expect. Test support only.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ErrNoBrowser is returned by Start when no Chromium is installed and
// scripts/chromium.sh could not install one.
var ErrNoBrowser = errors.New("no Chromium found (scripts/chromium.sh installs it with apt-get when run as root)")

// Find returns the path of a Chromium: what scripts/chromium.sh prints (it
// installs Debian's chromium with apt-get when missing and running as root).
func Find() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "chromium.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoBrowser, err)
	}
	return strings.TrimSpace(string(out)), nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("browsertest: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Browser is one running headless Chromium.
type Browser struct {
	ctx    context.Context // the browser's first tab; new tabs derive from it
	cancel func()
}

// Start launches Chromium with its profile and temporary files under dir.
func Start(execPath, dir string) (*Browser, error) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.NoSandbox, // root in containers; the pages are our own
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.WindowSize(1280, 900),
		chromedp.Env("TMPDIR="+dir),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancelCtx()
		cancelAlloc()
		return nil, fmt.Errorf("start %s: %w", execPath, err)
	}
	return &Browser{ctx: ctx, cancel: func() { cancelCtx(); cancelAlloc() }}, nil
}

// Close stops the browser.
func (b *Browser) Close() { b.cancel() }

// Shared is the test run's one browser: Prepare starts it in the
// background (once), Get waits for it, Close stops it from TestMain.
type Shared struct {
	once    sync.Once
	ready   chan struct{}
	browser *Browser
	err     error
	dir     string
}

// Prepare starts the browser in the background, so that a test can set up
// its server meanwhile; Get starts it if Prepare was not called.
func (s *Shared) Prepare() {
	s.once.Do(func() {
		s.ready = make(chan struct{})
		go func() {
			defer close(s.ready)
			var path string
			if path, s.err = Find(); s.err != nil {
				return
			}
			if s.dir, s.err = os.MkdirTemp("", "tradeops-chromium-"); s.err != nil {
				return
			}
			s.browser, s.err = Start(path, s.dir)
		}()
	})
}

// Get returns the run's browser, or skips t when none can be found — or
// fails it when the environment variable CI is set, where a missing browser
// is a broken setup, not a developer's machine.
func (s *Shared) Get(t testing.TB) *Browser {
	t.Helper()
	s.Prepare()
	<-s.ready
	if s.err != nil {
		if errors.Is(s.err, ErrNoBrowser) && os.Getenv("CI") == "" {
			t.Skip(s.err)
		}
		t.Fatal(s.err)
	}
	return s.browser
}

// Close stops the browser, if one was started, and removes its files.
func (s *Shared) Close() {
	if s.ready != nil {
		<-s.ready
	}
	if s.browser != nil {
		s.browser.Close()
	}
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Tab is one browser tab for one test, watched from the moment it opens.
type Tab struct {
	Ctx    context.Context
	t      testing.TB
	origin string

	mu       sync.Mutex
	problems []string
	expected map[string]int // "METHOD status path" → times still allowed
	requests map[network.RequestID]*network.Request
	seen     []string // "METHOD path" of every request, in order
}

// violationHook runs in every document before the page's own scripts (the
// browser injects it, so the page's CSP does not apply to it) and reports
// each CSP violation as a console error, which the tab records.
const violationHook = `document.addEventListener('securitypolicyviolation', (e) =>
	console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') + ' at ' + e.sourceFile + ':' + e.lineNumber));`

// Tab opens a tab for pages of origin (scheme://host:port); it fails t at
// cleanup for every problem seen and not taken with TakeProblems.
func (b *Browser) Tab(t testing.TB, origin string) *Tab {
	t.Helper()
	tab := &Tab{t: t, origin: origin, expected: map[string]int{}, requests: map[network.RequestID]*network.Request{}}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithListener(tab.watch))
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	tab.Ctx = ctx
	t.Cleanup(func() {
		for _, p := range tab.TakeProblems() {
			t.Errorf("browser: %s", p)
		}
		cancelTimeout()
		cancel()
	})
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: violationHook}); err != nil {
		t.Fatal(err)
	}
	return tab
}

func (tab *Tab) problem(format string, args ...any) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	tab.problems = append(tab.problems, fmt.Sprintf(format, args...))
}

// TakeProblems returns what went wrong so far and forgets it.
func (tab *Tab) TakeProblems() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	p := tab.problems
	tab.problems = nil
	return p
}

// Expect allows one answer with an HTTP error status (4xx or 5xx) to METHOD
// path (without the query), which a test provokes on purpose.
func (tab *Tab) Expect(method, path string, status int) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	tab.expected[fmt.Sprintf("%s %d %s", method, status, path)]++
}

// Requests returns "METHOD path?query" of every request the tab sent.
func (tab *Tab) Requests() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.seen...)
}

func (tab *Tab) watch(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert || ev.Type == runtime.ConsoleAPICalledTypeWarning {
			var parts []string
			for _, a := range ev.Args {
				if a.Value != nil {
					parts = append(parts, string(a.Value))
				} else {
					parts = append(parts, a.Description)
				}
			}
			tab.problem("console.%s: %s", ev.Type, strings.Join(parts, " "))
		}
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		tab.problem("uncaught exception: %s", msg)
	case *log.EventEntryAdded:
		// HTTP error statuses are judged from the network events below
		// (some are expected); everything else logged as an error or a
		// warning — CSP and Trusted Types violations among them — is not.
		if ev.Entry.Source == log.EntrySourceNetwork && ev.Entry.NetworkRequestID != "" {
			return
		}
		if ev.Entry.Level == log.EntryLevelError || ev.Entry.Level == log.EntryLevelWarning {
			tab.problem("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		}
	case *network.EventRequestWillBeSent:
		u, err := url.Parse(ev.Request.URL)
		tab.mu.Lock()
		tab.requests[ev.RequestID] = ev.Request
		if err == nil {
			tab.seen = append(tab.seen, ev.Request.Method+" "+u.RequestURI())
		}
		tab.mu.Unlock()
		// blob: and data: stay in the browser (a download, the date
		// picker's own icon).
		if err != nil || (u.Scheme != "blob" && u.Scheme != "data" && u.Scheme+"://"+u.Host != tab.origin) {
			tab.problem("request left the origin %s: %s", tab.origin, ev.Request.URL)
		}
	case *network.EventResponseReceived:
		if ev.Response.Status < 400 {
			return
		}
		u, _ := url.Parse(ev.Response.URL)
		method := "?"
		tab.mu.Lock()
		if r := tab.requests[ev.RequestID]; r != nil {
			method = r.Method
		}
		key := fmt.Sprintf("%s %d %s", method, ev.Response.Status, u.Path)
		// A GET answered 503 with Retry-After (a read model catching up
		// with the user's own write, on a loaded machine) is the API's
		// "ask again", which the console does: not a problem.
		allowed := tab.expected[key] > 0
		if allowed {
			tab.expected[key]--
		}
		allowed = allowed || method == http.MethodGet && ev.Response.Status == http.StatusServiceUnavailable && retryAfter(ev.Response.Headers)
		tab.mu.Unlock()
		if !allowed {
			tab.problem("unexpected HTTP %d for %s %s", ev.Response.Status, method, ev.Response.URL)
		}
	case *network.EventLoadingFailed:
		tab.mu.Lock()
		r := tab.requests[ev.RequestID]
		tab.mu.Unlock()
		where := string(ev.RequestID)
		if r != nil {
			if strings.HasPrefix(r.URL, "blob:") && ev.Canceled {
				return // a download handed to the download manager
			}
			where = r.Method + " " + r.URL
		}
		tab.problem("request failed: %s: %s (blocked: %s)", where, ev.ErrorText, ev.BlockedReason)
	}
}

// Do runs actions in the tab and fails the test on error, listing any
// problem seen so far (often the cause).
func (tab *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	if err := chromedp.Do(tab.Ctx, actions...); err != nil {
		tab.t.Fatalf("browser: %v; problems so far: %q", err, tab.TakeProblems())
	}
}

// Run runs one action in tab and returns its value, failing the test on
// error.
func Run[T any](tab *Tab, action chromedp.Action[T]) T {
	tab.t.Helper()
	v, err := chromedp.Run(tab.Ctx, action)
	if err != nil {
		tab.t.Fatalf("browser: %v; problems so far: %q", err, tab.TakeProblems())
	}
	return v
}

// Eval evaluates a JavaScript expression in tab, awaiting a promise.
func Eval[T any](tab *Tab, expr string) T {
	tab.t.Helper()
	return Run(tab, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// NoProblems fails the test now if anything went wrong so far.
func (tab *Tab) NoProblems() {
	tab.t.Helper()
	if p := tab.TakeProblems(); len(p) > 0 {
		tab.t.Fatalf("browser: %q", p)
	}
}

// Text returns the text content of the first element matching the CSS
// selector, once it is in the page.
func (tab *Tab) Text(sel string) string {
	tab.t.Helper()
	return Run(tab, chromedp.TextContent(chromedp.CSS(sel)))
}

// WaitFor polls the JavaScript condition until it is true, failing the test
// after timeout with the value of describe (another expression, "" for
// none) to say what the page showed instead.
func (tab *Tab) WaitFor(cond string, timeout time.Duration, describe string) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.Ctx, timeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(20*time.Millisecond))); err != nil {
		var state any
		if describe != "" {
			state, _ = chromedp.Run(tab.Ctx, chromedp.Evaluate[any](describe))
		}
		tab.t.Fatalf("waiting for %s: %v (page: %v); problems: %q", cond, err, state, tab.TakeProblems())
	}
}

// retryAfter tells whether response headers carry Retry-After.
func retryAfter(h network.Headers) bool {
	for k := range h {
		if strings.EqualFold(k, "Retry-After") {
			return true
		}
	}
	return false
}
