package domain_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

func TestParseQuantityAcceptsExactDecimals(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"0.01", "0.01"},
		{"1", "1"},
		{"0.010", "0.01"},    // canonical text drops trailing zeros
		{"1e2", "100"},       // exponents are allowed: JSON numbers may carry one
		{"1E-2", "0.01"},     // what JavaScript prints for small numbers
		{"1e+2", "100"},      // explicit plus in the exponent is JSON
		{"1e0000002", "100"}, // leading zeros in the exponent are JSON too
		{"0.000000000000000001", "0.000000000000000001"},                       // 18 places: the finest allowed
		{"0.0100000000000000000000", "0.01"},                                   // trailing zeros do not count as places
		{"100000000000e-11", "1"},                                              // nor do they when an exponent moves them
		{"1000000000000", "1000000000000"},                                     // 1e12: the largest allowed
		{"1e12", "1000000000000"},                                              //
		{"123456789012.123456789012345678", "123456789012.123456789012345678"}, // 30 significant digits, exact
	} {
		q, err := domain.ParseQuantity(tc.raw)
		if err != nil {
			t.Errorf("ParseQuantity(%q): %v", tc.raw, err)
			continue
		}
		if q.String() != tc.want {
			t.Errorf("ParseQuantity(%q) = %s, want %s", tc.raw, q, tc.want)
		}
	}
}

func TestParseQuantityRejectsWithAReason(t *testing.T) {
	const (
		notNumber = "must be a decimal number"
		notPos    = "greater than zero"
		places    = "decimal places"
		tooBig    = "at most 1000000000000"
		tooLong   = "characters"
	)
	for _, tc := range []struct{ raw, why string }{
		{"", "required"},
		{"0", notPos},
		{"0.0", notPos},
		{"-0", notPos},
		{"0e5", notPos},
		{"-1", notPos},
		{"-0.01", notPos},
		{"NaN", notNumber},
		{"nan", notNumber},
		{"Infinity", notNumber},
		{"-Infinity", notNumber},
		{"inf", notNumber},
		{"1e309", tooBig},
		{"1e-309", places},
		{"1e99999", tooBig},                       // exponent too long to be looked at
		{"1e-99999", places},                      //
		{"1e" + strings.Repeat("9", 40), tooBig},  // an exponent that would overflow an int
		{"1e-" + strings.Repeat("9", 40), places}, //
		{"0.000000000000000000001", places},       // 21 places
		{"0.0000000000000000001", places},         // 19 places
		{"1000000000001", tooBig},
		{"1000000000000.000000000000000001", tooBig},
		{"10000000000000", tooBig},
		{strings.Repeat("9", 64), tooBig},
		{strings.Repeat("9", 65), tooLong},
		{"0." + strings.Repeat("0", 70) + "1", tooLong},
		{" 0.01", notNumber}, // no trimming: a JSON number token has no spaces either
		{"0.01 ", notNumber},
		{"0.01\n", notNumber},
		{"+1", notNumber},
		{".5", notNumber},
		{"5.", notNumber},
		{"01", notNumber},
		{"00.1", notNumber},
		{"0x10", notNumber},
		{"1_000", notNumber},
		{"1,5", notNumber},
		{"１", notNumber},       // fullwidth digit
		{"\u22121", notNumber}, // Unicode minus, which the decimal library alone would take
		{"1e", notNumber},
		{"1e+", notNumber},
		{"e5", notNumber},
		{"--1", notNumber},
		{"0.01\x00", notNumber},
		{"\xff1", notNumber},
	} {
		_, err := domain.ParseQuantity(tc.raw)
		wantInvalid(t, err, "invalid_quantity", tc.why, "ParseQuantity(%q)", tc.raw)
	}
}

func TestParsePriceUsesItsOwnCode(t *testing.T) {
	p, err := domain.ParsePrice("65000.10")
	if err != nil || p.String() != "65000.1" {
		t.Fatalf("ParsePrice = %v, %v", p, err)
	}
	for _, raw := range []string{"0", "-5", "NaN", "1e309", "0.0000000000000000001"} {
		_, err := domain.ParsePrice(raw)
		wantInvalid(t, err, "invalid_price", "price ", "ParsePrice(%q)", raw)
	}
	if !(domain.Price{}).IsZero() || (domain.Price{}).String() != "" {
		t.Error("the zero Price must read as no price")
	}
}

// The ports hand over json.Number's text for numbers and the content of
// strings; both forms of one value parse to the same quantity.
func TestParseQuantityTakesJSONNumbersAndStringsAlike(t *testing.T) {
	for _, body := range []string{`{"qty":0.01}`, `{"qty":"0.01"}`, `{"qty":1e-2}`, `{"qty":"1E-2"}`} {
		var req struct{ Qty json.Number }
		dec := json.NewDecoder(strings.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&req); err != nil {
			t.Fatal(err)
		}
		q, err := domain.ParseQuantity(req.Qty.String())
		if err != nil || q.String() != "0.01" {
			t.Errorf("%s: %v, %v", body, q, err)
		}
	}
}

// wantInvalid fails unless err is a KindInvalid domain error with code whose
// message contains fragment; what describes the call.
func wantInvalid(t *testing.T, err error, code, fragment, what string, args ...any) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) || de.Kind != domain.KindInvalid || de.Code != code || !strings.Contains(de.Message, fragment) {
		t.Errorf("%s = %v, want %s mentioning %q", fmt.Sprintf(what, args...), err, code, fragment)
	}
}
