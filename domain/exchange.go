package domain

import (
	"regexp"
	"strings"
)

// Exchange is an exchange an operator keeps credentials for, in its
// canonical upper-case form.
type Exchange string

const (
	ExchangeBinance Exchange = "BINANCE"
	ExchangeIBKR    Exchange = "IBKR"
)

// Exchanges lists every supported exchange, in the order the API shows them.
var Exchanges = []Exchange{ExchangeBinance, ExchangeIBKR}

// maxExchangeNameLength bounds what ParseExchange looks at; no name is longer.
const maxExchangeNameLength = 16

var errUnknownExchange = Errorf(KindInvalid, "unknown_exchange", "exchange must be BINANCE or IBKR")

// ParseExchange reads an exchange name in any ASCII case ("binance",
// "Ibkr"): the one parser for secrets and orders. Only ASCII is folded, so
// "ıbkr" (dotless i, whose Unicode upper case is I) is not IBKR.
func ParseExchange(s string) (Exchange, error) {
	up, ascii := asciiUpper(s)
	if !ascii || len(s) > maxExchangeNameLength {
		return "", errUnknownExchange
	}
	e := Exchange(up)
	for _, known := range Exchanges {
		if e == known {
			return e, nil
		}
	}
	return "", errUnknownExchange
}

// Credential field names: the JSON fields of PUT /users/exchange-secrets and
// the field a ciphertext is bound to.
const (
	FieldAPIKey    = "api_key"
	FieldAPISecret = "api_secret"
	FieldAccountID = "account_id"
)

// Bounds of credential fields. A Binance API key is 64 characters; a secret
// is an HMAC key (64 characters) or a PEM private key for Ed25519 (~120) or
// RSA (up to ~3.3 KB for 4096 bits), hence the larger bound.
const (
	maxAPIKeyLength    = 512
	minAPIKeyLength    = 8
	maxAPISecretLength = 4096
)

// ibkrAccountID is an IBKR account id; paper accounts start with DU.
var ibkrAccountID = regexp.MustCompile(`^[A-Z0-9]{1,32}$`)

// fieldRule says how one credential field is validated.
type fieldRule struct {
	name     string
	required bool
	check    func(name, v string) error
}

// credentialRules are each exchange's fields, in a fixed order.
var credentialRules = map[Exchange][]fieldRule{
	ExchangeBinance: {
		{FieldAPIKey, true, checkAPIKey},
		{FieldAPISecret, true, checkAPISecret},
	},
	ExchangeIBKR: {
		{FieldAccountID, true, checkAccountID},
		{FieldAPIKey, false, checkAPIKey},
	},
}

// ExchangeCredentials are one user's validated credentials for one exchange.
// Every field is secret: all of them are encrypted at rest, and none reaches
// a log, an event or a response (the hint aside).
type ExchangeCredentials struct {
	exchange Exchange
	fields   map[string]Secret
	names    []string
}

// NewExchangeCredentials validates the fields given for ex: the required
// ones present, none unknown, each within its bounds and alphabet. Messages
// name fields, never values.
func NewExchangeCredentials(ex Exchange, given map[string]Secret) (ExchangeCredentials, error) {
	rules, ok := credentialRules[ex]
	if !ok {
		return ExchangeCredentials{}, errUnknownExchange
	}
	c := ExchangeCredentials{exchange: ex, fields: map[string]Secret{}}
	for name := range given {
		if !hasRule(rules, name) {
			return ExchangeCredentials{}, Errorf(KindInvalid, "unknown_field", "%s credentials have no field %q (fields: %s)", ex, name, ruleNames(rules))
		}
	}
	for _, r := range rules {
		v, present := given[r.name]
		if !present || v.IsZero() {
			if r.required {
				return ExchangeCredentials{}, Errorf(KindInvalid, "missing_field", "field %q is required for %s", r.name, ex)
			}
			continue
		}
		if err := r.check(r.name, v.Reveal()); err != nil {
			return ExchangeCredentials{}, err
		}
		c.fields[r.name] = v
		c.names = append(c.names, r.name)
	}
	return c, nil
}

func hasRule(rules []fieldRule, name string) bool {
	for _, r := range rules {
		if r.name == name {
			return true
		}
	}
	return false
}

func ruleNames(rules []fieldRule) string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.name
	}
	return strings.Join(names, ", ")
}

// checkAPIKey: printable ASCII without spaces.
func checkAPIKey(name, v string) error {
	if len(v) < minAPIKeyLength || len(v) > maxAPIKeyLength || !allASCII(v, func(c byte) bool { return c > ' ' && c < 0x7f }) {
		return Errorf(KindInvalid, "invalid_field", "field %q must be %d to %d printable ASCII characters without spaces", name, minAPIKeyLength, maxAPIKeyLength)
	}
	return nil
}

// checkAPISecret: printable ASCII, plus the line breaks of a PEM key.
func checkAPISecret(name, v string) error {
	if len(v) > maxAPISecretLength || !allASCII(v, func(c byte) bool { return (c >= ' ' && c < 0x7f) || c == '\n' || c == '\r' }) {
		return Errorf(KindInvalid, "invalid_field", "field %q must be at most %d printable ASCII characters (line breaks allowed for a PEM key)", name, maxAPISecretLength)
	}
	return nil
}

func checkAccountID(name, v string) error {
	if !ibkrAccountID.MatchString(v) {
		return Errorf(KindInvalid, "invalid_field", "field %q must be 1 to 32 upper-case letters and digits (paper accounts start with DU)", name)
	}
	return nil
}

func allASCII(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func (c ExchangeCredentials) Exchange() Exchange { return c.exchange }

// FieldNames are the fields present, in the exchange's field order.
func (c ExchangeCredentials) FieldNames() []string { return c.names }

// Field returns a field's value (zero when absent).
func (c ExchangeCredentials) Field(name string) Secret { return c.fields[name] }

// Hint identifies the credentials without revealing them: "****" and the
// last four characters of the API key (of the account id for IBKR without
// one). A value shorter than eight characters shows none of itself.
func (c ExchangeCredentials) Hint() string {
	v := c.fields[FieldAPIKey]
	if v.IsZero() {
		v = c.fields[FieldAccountID]
	}
	s := v.Reveal()
	if len(s) < 8 {
		return "****"
	}
	return "****" + s[len(s)-4:]
}

// ExchangeSecretsStream is the stream of one user's exchange credential
// events.
func ExchangeSecretsStream(userID string) string { return "exchange-secrets-" + userID }

// exchangeSecretEventsVersion is the schema version of the payloads below.
const exchangeSecretEventsVersion = 1

// Exchange secret payloads: hints, key ids and field names, never a value
// or a ciphertext.
type (
	ExchangeSecretConfigured struct {
		UserID     string   `json:"user_id"`
		Exchange   Exchange `json:"exchange"`
		APIKeyHint string   `json:"api_key_hint"`
		// KeyID is the id of the encryption key the fields were sealed under.
		KeyID  string   `json:"key_id"`
		Fields []string `json:"fields"`
	}
	ExchangeSecretDeleted struct {
		UserID   string   `json:"user_id"`
		Exchange Exchange `json:"exchange"`
	}
)

// Configured is the event recording that userID stored c, sealed under keyID.
func (c ExchangeCredentials) Configured(userID, keyID string) Event {
	return Event{Type: EventSecretConfigured, SchemaVersion: exchangeSecretEventsVersion, Data: ExchangeSecretConfigured{
		UserID: userID, Exchange: c.exchange, APIKeyHint: c.Hint(), KeyID: keyID, Fields: c.names,
	}}
}

// ExchangeSecretDeletedEvent records that userID deleted their ex credentials.
func ExchangeSecretDeletedEvent(userID string, ex Exchange) Event {
	return Event{Type: EventSecretDeleted, SchemaVersion: exchangeSecretEventsVersion, Data: ExchangeSecretDeleted{UserID: userID, Exchange: ex}}
}
