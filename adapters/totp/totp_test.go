package totp_test

import (
	"encoding/base32"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp"
	pqtotp "github.com/pquerna/otp/totp"

	"github.com/tradeops/tradeops/adapters/totp"
	"github.com/tradeops/tradeops/domain"
)

// RFC 6238 appendix B, SHA1, through the same Verify the API uses.
func TestRFC6238Vectors(t *testing.T) {
	seed := domain.NewSecret(base32.StdEncoding.EncodeToString([]byte("12345678901234567890")))
	v := totp.New().WithDigits(8)
	for _, c := range []struct {
		unix int64
		code string
	}{{59, "94287082"}, {1111111109, "07081804"}, {1111111111, "14050471"}, {1234567890, "89005924"}, {2000000000, "69279037"}, {20000000000, "65353130"}} {
		step, ok := v.Verify(seed, domain.NewSecret(c.code), time.Unix(c.unix, 0), 0)
		if !ok || step != c.unix/30 {
			t.Errorf("t=%d code %s: ok %v step %d", c.unix, c.code, ok, step)
		}
	}
}

func TestVerifyWindowAndReplay(t *testing.T) {
	v := totp.New()
	seed, u, err := v.NewSeed("alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := url.Parse(u.Reveal())
	if err != nil || parsed.Scheme != "otpauth" || parsed.Query().Get("issuer") != "tradeops" ||
		parsed.Query().Get("secret") != seed.Reveal() || !strings.HasSuffix(parsed.Path, "tradeops:alice@example.com") {
		t.Fatalf("url %s: %v", u.Reveal(), err)
	}
	now := time.Unix(1_800_000_015, 0)
	codeAt := func(t0 time.Time) domain.Secret {
		c, err := pqtotp.GenerateCodeCustom(seed.Reveal(), t0, pqtotp.ValidateOpts{Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			t.Fatal(err)
		}
		return domain.NewSecret(c)
	}
	step := now.Unix() / 30
	for _, c := range []struct {
		offset time.Duration
		ok     bool
	}{{0, true}, {-30 * time.Second, true}, {30 * time.Second, true}, {-60 * time.Second, false}, {60 * time.Second, false}} {
		got, ok := v.Verify(seed, codeAt(now.Add(c.offset)), now, 0)
		if ok != c.ok || (ok && got != step+int64(c.offset/(30*time.Second))) {
			t.Errorf("offset %v: ok %v step %d", c.offset, ok, got)
		}
	}
	// Once step was accepted, its code and older ones are refused.
	if _, ok := v.Verify(seed, codeAt(now), now, step); ok {
		t.Error("replayed code accepted")
	}
	if _, ok := v.Verify(seed, codeAt(now.Add(-30*time.Second)), now, step); ok {
		t.Error("older code accepted after a newer one")
	}
	if _, ok := v.Verify(seed, codeAt(now.Add(30*time.Second)), now, step); !ok {
		t.Error("next step's code refused")
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := v.Verify(seed, domain.NewSecret(bad), now, 0); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
