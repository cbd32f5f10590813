package http

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tradeops/tradeops/app"
)

func TestClientIP(t *testing.T) {
	lb := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}
	for _, tc := range []struct {
		name    string
		trust   bool
		proxies []netip.Prefix // nil: the default private ranges
		remote  string
		xff     []string // one header line each
		realIP  string
		want    string
	}{
		{name: "headers off: the peer, whatever the headers say", remote: "10.0.0.2:5000", xff: []string{"198.51.100.7"}, realIP: "198.51.100.8", want: "10.0.0.2"},
		{name: "untrusted peer: its headers are ignored", trust: true, remote: "198.51.100.9:5000", xff: []string{"192.0.2.1"}, realIP: "192.0.2.2", want: "198.51.100.9"},
		{name: "one proxy", trust: true, remote: "10.0.0.2:5000", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "forged leftmost entry ignored", trust: true, remote: "10.0.0.2:5000", xff: []string{"1.2.3.4, 198.51.100.7"}, want: "198.51.100.7"},
		{name: "forged private leftmost entry ignored", trust: true, remote: "10.0.0.2:5000", xff: []string{"10.9.9.9, 198.51.100.7"}, want: "198.51.100.7"},
		{name: "chain of trusted proxies skipped", trust: true, remote: "127.0.0.1:5000", xff: []string{"6.6.6.6, 198.51.100.7, 192.168.1.1, 10.0.0.3"}, want: "198.51.100.7"},
		{name: "several header lines are one list", trust: true, remote: "10.0.0.2:5000", xff: []string{"6.6.6.6", "198.51.100.7, 172.16.0.4"}, want: "198.51.100.7"},
		{name: "every entry trusted: the leftmost", trust: true, remote: "10.0.0.2:5000", xff: []string{"192.168.0.10, 10.0.0.3"}, want: "192.168.0.10"},
		{name: "entry with port", trust: true, remote: "10.0.0.2:5000", xff: []string{"6.6.6.6, 198.51.100.7:4711"}, want: "198.51.100.7"},
		{name: "IPv6 entry with port", trust: true, remote: "[::1]:5000", xff: []string{"[2001:db8::7]:4711"}, want: "2001:db8::7"},
		{name: "IPv4-mapped entry unmapped", trust: true, remote: "10.0.0.2:5000", xff: []string{"::ffff:198.51.100.7"}, want: "198.51.100.7"},
		{name: "garbage entry stops at the last trusted hop", trust: true, remote: "10.0.0.2:5000", xff: []string{"6.6.6.6, bogus, 10.0.0.3"}, want: "10.0.0.3"},
		{name: "garbage only: the peer", trust: true, remote: "10.0.0.2:5000", xff: []string{"not-an-ip"}, want: "10.0.0.2"},
		{name: "X-Real-IP from a trusted peer", trust: true, remote: "10.0.0.2:5000", realIP: "198.51.100.7", want: "198.51.100.7"},
		{name: "X-Forwarded-For wins over X-Real-IP", trust: true, remote: "10.0.0.2:5000", xff: []string{"198.51.100.7"}, realIP: "6.6.6.6", want: "198.51.100.7"},
		{name: "invalid X-Real-IP: the peer", trust: true, remote: "10.0.0.2:5000", realIP: "nope", want: "10.0.0.2"},
		{name: "IPv6 peer in fc00::/7", trust: true, remote: "[fd00::2]:5000", xff: []string{"2001:db8::9"}, want: "2001:db8::9"},
		{name: "IPv4-mapped peer", trust: true, remote: "[::ffff:10.0.0.2]:5000", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		{name: "configured proxies replace the default", trust: true, proxies: lb, remote: "10.0.0.2:5000", xff: []string{"198.51.100.7"}, want: "10.0.0.2"},
		{name: "configured proxies", trust: true, proxies: lb, remote: "203.0.113.5:5000", xff: []string{"6.6.6.6, 10.0.0.8, 2001:db8:1::3"}, want: "10.0.0.8"},
		{name: "unparsable peer kept as is", trust: true, remote: "@", xff: []string{"198.51.100.7"}, want: "@"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.realIP != "" {
				r.Header.Set("X-Real-IP", tc.realIP)
			}
			if got := clientIP(r, Options{TrustProxyHeaders: tc.trust, TrustedProxies: tc.proxies}); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// TestClientIPReachesTheCaller: the handler chain hands the rule's result to
// the app layer (what the throttle and the audit trail see).
func TestClientIPReachesTheCaller(t *testing.T) {
	var got string
	h := NewHandler(Options{Version: "test", Registry: prometheus.NewRegistry(), Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)), TrustProxyHeaders: true},
		func(r *mux.Router) {
			r.HandleFunc("/ip", func(w http.ResponseWriter, r *http.Request) { got = app.CallerFrom(r.Context()).ClientIP })
		})
	req := httptest.NewRequest(http.MethodGet, "/ip", nil)
	req.RemoteAddr = "10.0.0.2:5000"
	req.Header.Set("X-Forwarded-For", "1.2.3.4, 198.51.100.7")
	h.ServeHTTP(httptest.NewRecorder(), req)
	if got != "198.51.100.7" {
		t.Fatalf("caller IP %q", got)
	}
}
