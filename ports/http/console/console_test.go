package console

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/internal/apispec"
	porthttp "github.com/tradeops/tradeops/ports/http"
)

type vendored struct {
	File, Package, Version, License, Source, Path, SHA256 string
}

// The embedded vendored libraries are the bytes scripts/vendor_console.sh
// downloaded: each matches its manifest entry's SHA-256, has a version and
// a license, and no embedded file is left out of the manifest.
func TestVendoredFilesMatchTheManifest(t *testing.T) {
	raw, err := files.ReadFile("vendor/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var manifest []vendored
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, v := range manifest {
		body, err := files.ReadFile("vendor/" + v.File)
		if err != nil {
			t.Fatalf("%s is in the manifest but not embedded: %v", v.File, err)
		}
		sum := sha256.Sum256(body)
		if got := hex.EncodeToString(sum[:]); got != v.SHA256 {
			t.Errorf("%s: SHA-256 %s, the manifest says %s (rerun scripts/vendor_console.sh)", v.File, got, v.SHA256)
		}
		if v.Version == "" || v.License != "MIT" || !strings.HasPrefix(v.Source, "https://registry.npmjs.org/") {
			t.Errorf("%s: incomplete manifest entry %+v", v.File, v)
		}
		listed[v.File] = true
	}
	entries, _ := fs.ReadDir(files, "vendor")
	for _, e := range entries {
		if (strings.HasSuffix(e.Name(), ".js") || strings.HasSuffix(e.Name(), ".mjs")) && !listed[e.Name()] {
			t.Errorf("vendor/%s is not in the manifest", e.Name())
		}
	}
	if len(listed) != 2 {
		t.Fatalf("manifest lists %v", listed)
	}
}

// No inline script or style anywhere in the page, no HTML sink in the
// script: the CSP would refuse the one and Trusted Types the other, so
// they would only break the console.
func TestPageHasNoInlineScriptOrStyle(t *testing.T) {
	page := string(assets["index.html"].body)
	for _, bad := range []*regexp.Regexp{regexp.MustCompile(`<script(?:[^>]*)>\s*[^<\s]`), regexp.MustCompile(`(?i)\sstyle=`),
		regexp.MustCompile(`(?i)<style`), regexp.MustCompile(`(?i)\son[a-z]+=`)} {
		if m := bad.FindString(page); m != "" {
			t.Errorf("index.html: inline %q", m)
		}
	}
	script := string(assets["app.js"].body)
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|(localStorage|sessionStorage)\s*[.\[]|document\.cookie|\beval\(|new Function`)
	if m := sinks.FindAllString(script, -1); len(m) > 0 {
		t.Errorf("app.js uses %q", m)
	}
}

func newServer(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(porthttp.NewHandler(porthttp.Options{
		Version: "test", Registry: prometheus.NewRegistry(), Logger: slog.New(slog.DiscardHandler),
	}, Routes))
	t.Cleanup(srv.Close)
	return srv
}

// Every console answer (page, files, redirect, 404) carries the security
// headers and matches api/openapi.yaml; each file has its type and an ETag
// that turns a repeat into a 304.
func TestServedWithHeaders(t *testing.T) {
	srv := newServer(t)
	client := apispec.Client(t)
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for path, want := range map[string]struct {
		status int
		ctype  string
	}{
		"/console":                  {http.StatusMovedPermanently, ""},
		"/console/":                 {http.StatusOK, "text/html; charset=utf-8"},
		"/console/app.js":           {http.StatusOK, "text/javascript; charset=utf-8"},
		"/console/qrcode.mjs":       {http.StatusOK, "text/javascript; charset=utf-8"},
		"/console/chart.umd.min.js": {http.StatusOK, "text/javascript; charset=utf-8"},
		"/console/console.css":      {http.StatusOK, "text/css; charset=utf-8"},
		"/console/favicon.svg":      {http.StatusOK, "image/svg+xml"},
		"/console/manifest.json":    {http.StatusOK, "application/json"},
		"/console/no-such-file.js":  {http.StatusNotFound, "application/json"},
	} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h := resp.Header
		if resp.StatusCode != want.status || (want.ctype != "" && h.Get("Content-Type") != want.ctype) {
			t.Errorf("%s: %d %s, want %d %s", path, resp.StatusCode, h.Get("Content-Type"), want.status, want.ctype)
		}
		if h.Get("Content-Security-Policy") != Policy || h.Get("Referrer-Policy") != "no-referrer" ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: security headers %v", path, h)
		}
		if resp.StatusCode != http.StatusOK {
			continue
		}
		if len(body) == 0 || h.Get("Cache-Control") != "no-cache" || h.Get("ETag") == "" {
			t.Errorf("%s: %d bytes, Cache-Control %q, ETag %q", path, len(body), h.Get("Cache-Control"), h.Get("ETag"))
		}
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("If-None-Match", h.Get("ETag"))
		again, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		again.Body.Close()
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("%s with its ETag: %d, want 304", path, again.StatusCode)
		}
		// HEAD (curl -I, a proxy's check) answers like GET, without a body.
		head, err := http.Head(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(head.Body)
		head.Body.Close()
		if head.StatusCode != http.StatusOK || len(b) != 0 || head.Header.Get("Content-Security-Policy") != Policy ||
			head.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
			t.Errorf("HEAD %s: %d, %d bytes, headers %v", path, head.StatusCode, len(b), head.Header)
		}
	}
}

// A path that climbs out of /console/ serves nothing from the embedded
// files (the router cleans it into a redirect to the cleaned path).
func TestNoTraversal(t *testing.T) {
	srv := newServer(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/console/..%2fconsole.go", "/console/%2e%2e%2fgo.mod", "/console/vendor%2fqrcode.mjs", "/console/static%2fapp.js"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "package") || strings.Contains(string(body), "qrcode") {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
	}
}

// The policy is the issue's: default-src 'self', no 'unsafe-inline' or
// 'unsafe-eval', no framing.
func TestPolicy(t *testing.T) {
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'", "form-action 'none'", "object-src 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(Policy, want) {
			t.Errorf("policy lacks %s", want)
		}
	}
	if strings.Contains(Policy, "unsafe-") || strings.Contains(Policy, "*") || strings.Contains(Policy, "data:") {
		t.Errorf("policy allows too much: %s", Policy)
	}
}
