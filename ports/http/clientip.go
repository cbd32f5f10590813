package http

import (
	"net/http"
	"net/netip"
	"strings"
)

// defaultTrustedProxies are trusted when Options.TrustedProxies is nil
// (TRUSTED_PROXIES unset): the private, loopback and link-local ranges a
// reverse proxy in front of the service usually connects from.
var defaultTrustedProxies = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// clientIP is the address the login throttle and the audit trail key on.
// Without TrustProxyHeaders it is the connection's peer. With it, forwarding
// headers count only when the peer itself is a trusted proxy, and then:
//
//   - X-Forwarded-For is walked from the right (each proxy appends the
//     address it received the request from), skipping trusted proxies; the
//     first untrusted address is the client. Entries left of it were written
//     by the client or by proxies we do not control, so a forged leftmost
//     entry changes nothing. When every entry is a trusted proxy, the
//     leftmost is the client (a request from inside the private network).
//     An unparsable entry stops the walk at the last trusted hop.
//   - otherwise X-Real-IP, which the trusted proxy must set (overwrite);
//   - otherwise the peer.
//
// Addresses are returned in canonical form (IPv4-mapped IPv6 unmapped, no
// zone), so one client cannot appear as several throttle keys.
func clientIP(r *http.Request, opts Options) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := canonical(peer.Addr())
	trusted := opts.TrustedProxies
	if trusted == nil {
		trusted = defaultTrustedProxies
	}
	if !opts.TrustProxyHeaders || !isTrusted(addr, trusted) {
		return addr.String()
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		entries := strings.Split(strings.Join(xff, ","), ",")
		for i := len(entries) - 1; i >= 0; i-- {
			hop, ok := parseHop(entries[i])
			if !ok {
				break
			}
			addr = hop
			if !isTrusted(hop, trusted) {
				break
			}
		}
		return addr.String()
	}
	if hop, ok := parseHop(r.Header.Get("X-Real-IP")); ok {
		return hop.String()
	}
	return addr.String()
}

// parseHop reads one forwarding entry: an address, or an address with a
// port as some proxies write it ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return canonical(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return canonical(ap.Addr()), true
	}
	return netip.Addr{}, false
}

func canonical(a netip.Addr) netip.Addr { return a.Unmap().WithZone("") }

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
