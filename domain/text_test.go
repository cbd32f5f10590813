package domain_test

import (
	"testing"

	"github.com/tradeops/tradeops/domain"
)

func TestValidText(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, "ops@example.com": true, "grüße ✓": true, "\u00a0\t": true,
		"pro\x00be": false, "\xff\xfe": false, "a\xc3": false, "\xed\xa0\x80": false, // a lone surrogate's bytes
	} {
		if got := domain.ValidText(s); got != want {
			t.Errorf("ValidText(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestParseEmailRefusesInvalidText(t *testing.T) {
	// Lowercasing would turn \xff into a valid U+FFFD: the check runs first.
	for _, s := range []string{"\xff@example.com", "a\x00b@example.com", "ops@ex\xc3.com"} {
		if _, err := domain.ParseEmail(s); domain.ErrorKind(err) != domain.KindInvalid {
			t.Errorf("ParseEmail(%q) = %v", s, err)
		}
	}
}
