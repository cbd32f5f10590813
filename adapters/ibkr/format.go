package ibkr

import (
	"strings"

	"github.com/shopspring/decimal"
)

// grouped formats d rounded to places decimals with comma thousands
// separators, the way IBKR's what-if strings do: 2301.5 → "2,301.50".
func grouped(d decimal.Decimal, places int32) string {
	s := d.StringFixed(places)
	sign := ""
	if strings.HasPrefix(s, "-") {
		sign, s = "-", s[1:]
	}
	intPart, frac, hasFrac := strings.Cut(s, ".")
	var b strings.Builder
	b.WriteString(sign)
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if hasFrac {
		b.WriteByte('.')
		b.WriteString(frac)
	}
	return b.String()
}

// usd formats an amount of dollars: "2,301.50 USD".
func usd(d decimal.Decimal) string { return grouped(d, 2) + " USD" }
