// Package console serves the operator console: a static page, one ES module,
// a stylesheet and two vendored browser libraries, embedded in the binary.
// It adds no data endpoint: the page calls the API (DESIGN §5) with the
// user's token, which it keeps in memory only. Every console response
// carries a strict Content-Security-Policy, so a value the page inserted as
// HTML by mistake could still not run a script (see docs/ARCHITECTURE.md,
// "Operator console").
package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"

	"github.com/gorilla/mux"

	"github.com/tradeops/tradeops/domain"
	porthttp "github.com/tradeops/tradeops/ports/http"
)

// files holds the console's own files (static/) and the vendored libraries
// with their manifest and license (vendor/, written by
// scripts/vendor_console.sh). Both are served flat under /console/.
//
//go:embed static vendor
var files embed.FS

// Policy is the console's Content-Security-Policy: scripts, styles and
// requests only from the origin, no inline script or style (no
// 'unsafe-inline'), no plugins, no <base>, no native form submission (the
// page's forms are sent by fetch(); without its script a login form must not
// put the password into a URL), no framing; and Trusted Types, so that
// assigning a string to innerHTML or a similar HTML sink throws instead of
// parsing it.
const Policy = "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// asset is one served file, hashed once at start for its ETag.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

var assets = mustLoad()

func mustLoad() map[string]asset {
	out := map[string]asset{}
	for _, dir := range []string{"static", "vendor"} {
		entries, err := fs.ReadDir(files, dir)
		if err != nil {
			panic(err)
		}
		for _, e := range entries {
			body, err := files.ReadFile(dir + "/" + e.Name())
			if err != nil {
				panic(err)
			}
			if _, dup := out[e.Name()]; dup {
				panic(fmt.Sprintf("console: %s is both in static/ and vendor/", e.Name()))
			}
			sum := sha256.Sum256(body)
			out[e.Name()] = asset{body: body, contentType: contentType(e.Name()), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		}
	}
	return out
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js", ".mjs": // module scripts need a JavaScript type; mime's table may lack .mjs
		return "text/javascript; charset=utf-8"
	case ".md":
		return "text/markdown; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// Routes serves GET (and HEAD: a proxy's or curl -I's check) /console (a
// redirect), /console/ (the page) and /console/{file}.
func Routes(r *mux.Router) {
	r.Handle("/console", secured(http.RedirectHandler("/console/", http.StatusMovedPermanently))).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/console/", secured(serve("index.html"))).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/console/{file}", secured(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(mux.Vars(r)["file"]).ServeHTTP(w, r)
	}))).Methods(http.MethodGet, http.MethodHead)
}

var errNoFile = domain.Errorf(domain.KindNotFound, "not_found", "no such console file")

func serve(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := assets[name]
		if !ok {
			porthttp.WriteError(w, r, errNoFile)
			return
		}
		w.Header().Set("Content-Type", a.contentType)
		w.Header().Set("ETag", a.etag)
		// Revalidate every time (a 304 when unchanged), so a new release's
		// page never runs with the previous release's script.
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	})
}

// secured sets the console's security headers on every answer, errors and
// redirects included.
func secured(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", Policy)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY") // frame-ancestors for browsers without CSP 2
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}
