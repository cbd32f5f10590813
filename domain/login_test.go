package domain_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/domain"
)

func TestAccountDelayGrowsToItsCap(t *testing.T) {
	p := domain.DefaultThrottlePolicy
	want := []time.Duration{0, 0, 0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60}
	for n, w := range want {
		if got := p.AccountDelay(n); got != w*time.Second {
			t.Errorf("after %d failures: %v, want %v", n, got, w*time.Second)
		}
	}
	if got := p.AccountDelay(1 << 30); got != time.Minute {
		t.Errorf("after very many failures: %v, want the 60 s cap", got)
	}
}

func TestThrottlePolicy(t *testing.T) {
	p := domain.ThrottlePolicy{PerIP: 5, Window: 15 * time.Minute, FreeFailures: 2, FirstDelay: time.Second, MaxDelay: 8 * time.Second, InFlight: 30 * time.Second}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ago := func(d ...time.Duration) []time.Time {
		var out []time.Time
		for _, x := range d {
			out = append(out, now.Add(-x))
		}
		return out
	}
	type ra = domain.RecentAttempts
	cases := []struct {
		name        string
		account, ip ra
		want        time.Duration
	}{
		{"free failures cost nothing", ra{Failures: ago(3*time.Second, time.Second)}, ra{}, 0},
		{"the first counted failure: FirstDelay from the latest failure", ra{Failures: ago(3*time.Second, 2*time.Second, 300*time.Millisecond)}, ra{}, 700 * time.Millisecond},
		{"the delay doubles", ra{Failures: ago(9*time.Second, 8*time.Second, 7*time.Second, 500*time.Millisecond)}, ra{}, 1500 * time.Millisecond},
		{"and is over once it has passed", ra{Failures: ago(9*time.Second, 8*time.Second, 7*time.Second, 2*time.Second)}, ra{}, 0},
		{"capped at MaxDelay however many failures",
			ra{Failures: ago(14*time.Minute, 13*time.Minute, 12*time.Minute, 11*time.Minute, 10*time.Minute, 9*time.Minute, 8*time.Minute, 7*time.Minute, 6*time.Minute, 0)}, ra{}, 8 * time.Second},
		{"in-flight attempts that may become counted failures", ra{Failures: ago(time.Minute), Pending: ago(time.Second, 0)}, ra{}, time.Second},
		{"in-flight attempts within the free ones", ra{Failures: ago(time.Minute), Pending: ago(time.Second)}, ra{}, 0},
		{"attempts pending for longer than InFlight were abandoned", ra{Failures: ago(time.Minute), Pending: ago(40*time.Second, 31*time.Second, 30*time.Second)}, ra{}, 0},
		{"the IP limit is strict: wait for the oldest to leave the window", ra{}, ra{Failures: ago(14*time.Minute, 5, 4, 3, 2)}, time.Minute},
		{"over the IP limit: all but PerIP-1 must leave", ra{}, ra{Failures: ago(14*time.Minute+30*time.Second, 14*time.Minute, 5, 4, 3, 2)}, time.Minute},
		{"in-flight attempts fill the IP's rest", ra{}, ra{Failures: ago(3, 2, 1), Pending: ago(2*time.Second, time.Second)}, time.Second},
		{"but not once abandoned", ra{}, ra{Failures: ago(3, 2, 1), Pending: ago(time.Hour, time.Minute)}, 0},
		{"the longer wait wins", ra{Failures: ago(4*time.Second, 3*time.Second, 2*time.Second, 0)}, ra{Failures: ago(10*time.Minute, 5, 4, 3, 2)}, 5 * time.Minute},
	}
	for _, c := range cases {
		if got := p.RetryAfter(now, c.account, c.ip); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// An attacker failing as fast as allowed never makes the real user wait
// more than MaxDelay after the attacker's latest failure.
func TestAccountLockoutStaysShort(t *testing.T) {
	p := domain.DefaultThrottlePolicy
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var acct domain.RecentAttempts
	for range 200 {
		wait := p.RetryAfter(now, acct, domain.RecentAttempts{})
		if wait > p.MaxDelay {
			t.Fatalf("after %d failures: wait %v", len(acct.Failures), wait)
		}
		now = now.Add(wait)
		acct.Failures = append(acct.Failures, now)
		for len(acct.Failures) > 0 && now.Sub(acct.Failures[0]) > p.Window {
			acct.Failures = acct.Failures[1:]
		}
	}
	if got := p.RetryAfter(now, acct, domain.RecentAttempts{}); got != p.MaxDelay {
		t.Fatalf("steady state: %v, want %v", got, p.MaxDelay)
	}
}

func TestUsernameKeyHashesTheNormalisedName(t *testing.T) {
	secret := []byte("a-server-secret-key-of-32-bytes-at-least")
	k := domain.NewUsernameKey(secret)
	h := k.Hash("  CanaryPassw0rd!x ")
	// HMAC-SHA256 under HMAC-SHA256(SECRET_KEY, label), of the lowercased,
	// trimmed name.
	derive := hmac.New(sha256.New, secret)
	derive.Write([]byte("tradeops/login-username/v1"))
	m := hmac.New(sha256.New, derive.Sum(nil))
	m.Write([]byte("canarypassw0rd!x"))
	if want := hex.EncodeToString(m.Sum(nil)); h != want {
		t.Fatalf("hash %s, want %s", h, want)
	}
	if k.Hash("canarypassw0rd!x") != h {
		t.Fatal("case and spaces change the hash")
	}
	unkeyed := sha256.Sum256([]byte("canarypassw0rd!x"))
	if h == hex.EncodeToString(unkeyed[:]) || domain.NewUsernameKey([]byte("another-secret-key-of-32-bytes-at-least")).Hash("canarypassw0rd!x") == h {
		t.Fatal("the hash does not depend on the key")
	}
	s := domain.LoginStream(h)
	if s != "login-"+h || strings.Contains(strings.ToLower(s), "canary") {
		t.Fatal(s)
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", k)
	out := fmt.Sprintf("%v %+v %#v %s", k, k, k, k) + buf.String()
	derived := derive.Sum(nil)
	if strings.Contains(out, hex.EncodeToString(derived)) || strings.Contains(out, fmt.Sprint(derived)) || !strings.Contains(out, "[REDACTED]") {
		t.Fatalf("the key prints: %s", out)
	}
}

// An attempt ends, outcome recorded, before InFlight: a pending one older
// than that is dead, never a live one settled as interrupted.
func TestAttemptsEndWithinInFlight(t *testing.T) {
	p := domain.DefaultThrottlePolicy
	if p.AttemptTimeout() != 20*time.Second || p.FinishTimeout() != 5*time.Second {
		t.Fatalf("attempt %v, finish %v", p.AttemptTimeout(), p.FinishTimeout())
	}
	for _, inFlight := range []time.Duration{time.Second, 30 * time.Second, 7 * time.Minute} {
		p.InFlight = inFlight
		if p.AttemptTimeout()+p.FinishTimeout() >= inFlight || p.AttemptTimeout() <= 0 || p.FinishTimeout() <= 0 {
			t.Errorf("InFlight %v: attempt %v + finish %v", inFlight, p.AttemptTimeout(), p.FinishTimeout())
		}
	}
}

// TestThrottleSource: IPv4 addresses (also IPv4-mapped IPv6) are their own
// source, IPv6 addresses count as their /64, anything else is kept.
func TestThrottleSource(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "::ffff:192.0.2.7",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2::1":      "2001:db8:1:2::/64",
		"fe80::1%eth0":         "fe80::/64",
		"":                     "",
		"not-an-ip":            "not-an-ip",
	} {
		if got := domain.ThrottleSource(in); got != want {
			t.Errorf("ThrottleSource(%q) = %q, want %q", in, got, want)
		}
	}
}
