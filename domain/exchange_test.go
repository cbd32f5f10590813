package domain_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

func secrets(kv ...string) map[string]domain.Secret {
	m := map[string]domain.Secret{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = domain.NewSecret(kv[i+1])
	}
	return m
}

func TestParseExchange(t *testing.T) {
	for in, want := range map[string]domain.Exchange{"binance": domain.ExchangeBinance, "BINANCE": domain.ExchangeBinance, "Ibkr": domain.ExchangeIBKR} {
		if got, err := domain.ParseExchange(in); err != nil || got != want {
			t.Errorf("%q: %v %v", in, got, err)
		}
	}
	// "ıbkr": the dotless i upper-cases to I under Unicode rules, not ASCII.
	for _, in := range []string{"", "kraken", "binance\x00", "\xff\xfe", strings.Repeat("b", 1000), "BINANCE ", "ıbkr", "bınance"} {
		if _, err := domain.ParseExchange(in); domain.ErrorKind(err) != domain.KindInvalid {
			t.Errorf("%q accepted (%v)", in, err)
		}
	}
}

func TestExchangeCredentialsValidation(t *testing.T) {
	const key, secret = "AbCdEf0123456789wxyz", "s3cr3t-CANARY"
	pem := "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n"
	ok := []struct {
		ex     domain.Exchange
		fields map[string]domain.Secret
		hint   string
		names  []string
	}{
		{domain.ExchangeBinance, secrets("api_key", key, "api_secret", secret), "****wxyz", []string{"api_key", "api_secret"}},
		{domain.ExchangeBinance, secrets("api_key", key, "api_secret", pem), "****wxyz", []string{"api_key", "api_secret"}},
		{domain.ExchangeIBKR, secrets("account_id", "DU1234567"), "****4567", []string{"account_id"}},
		{domain.ExchangeIBKR, secrets("account_id", "U1", "api_key", key), "****wxyz", []string{"account_id", "api_key"}},
		{domain.ExchangeIBKR, secrets("account_id", "DU12"), "****", []string{"account_id"}},
	}
	for _, c := range ok {
		cr, err := domain.NewExchangeCredentials(c.ex, c.fields)
		if err != nil {
			t.Fatalf("%s %v: %v", c.ex, c.names, err)
		}
		if cr.Hint() != c.hint || strings.Join(cr.FieldNames(), ",") != strings.Join(c.names, ",") {
			t.Errorf("%s: hint %q names %v", c.ex, cr.Hint(), cr.FieldNames())
		}
	}
	bad := map[string]struct {
		ex     domain.Exchange
		fields map[string]domain.Secret
		code   string
	}{
		"binance without secret":   {domain.ExchangeBinance, secrets("api_key", key), "missing_field"},
		"binance empty key":        {domain.ExchangeBinance, secrets("api_key", "", "api_secret", secret), "missing_field"},
		"binance with account id":  {domain.ExchangeBinance, secrets("api_key", key, "api_secret", secret, "account_id", "DU1"), "unknown_field"},
		"ibkr without account":     {domain.ExchangeIBKR, secrets("api_key", key), "missing_field"},
		"ibkr lower-case account":  {domain.ExchangeIBKR, secrets("account_id", "du123"), "invalid_field"},
		"ibkr account too long":    {domain.ExchangeIBKR, secrets("account_id", strings.Repeat("D", 33)), "invalid_field"},
		"ibkr with secret":         {domain.ExchangeIBKR, secrets("account_id", "DU1", "api_secret", secret), "unknown_field"},
		"key with NUL":             {domain.ExchangeBinance, secrets("api_key", "AbCdEf01\x00CANARY", "api_secret", secret), "invalid_field"},
		"key with space":           {domain.ExchangeBinance, secrets("api_key", "AbCdEf01 CANARY", "api_secret", secret), "invalid_field"},
		"key not UTF-8":            {domain.ExchangeBinance, secrets("api_key", "AbCdEf01\xff\xfeCANARY", "api_secret", secret), "invalid_field"},
		"key too short":            {domain.ExchangeBinance, secrets("api_key", "short", "api_secret", secret), "invalid_field"},
		"key too long":             {domain.ExchangeBinance, secrets("api_key", strings.Repeat("k", 513), "api_secret", secret), "invalid_field"},
		"secret with NUL":          {domain.ExchangeBinance, secrets("api_key", key, "api_secret", "CANARY\x00"), "invalid_field"},
		"secret with non-ASCII":    {domain.ExchangeBinance, secrets("api_key", key, "api_secret", "CANARYé"), "invalid_field"},
		"secret too long":          {domain.ExchangeBinance, secrets("api_key", key, "api_secret", strings.Repeat("s", 4097)), "invalid_field"},
		"unknown exchange":         {domain.Exchange("KRAKEN"), secrets("api_key", key), "unknown_exchange"},
		"ibkr api key with a tab":  {domain.ExchangeIBKR, secrets("account_id", "DU1", "api_key", "AbCdEf01\tCANARY"), "invalid_field"},
		"binance secret only tabs": {domain.ExchangeBinance, secrets("api_key", key, "api_secret", "\t\tCANARY"), "invalid_field"},
	}
	for name, c := range bad {
		_, err := domain.NewExchangeCredentials(c.ex, c.fields)
		var e *domain.Error
		if err == nil || !errors.As(err, &e) || e.Code != c.code || e.Kind != domain.KindInvalid {
			t.Errorf("%s: got %v, want %s", name, err, c.code)
			continue
		}
		if strings.Contains(e.Message, "CANARY") || strings.Contains(e.Message, key) {
			t.Errorf("%s: message echoes a value: %s", name, e.Message)
		}
	}
}

func TestConfiguredEventCarriesNoSecret(t *testing.T) {
	cr, err := domain.NewExchangeCredentials(domain.ExchangeBinance, secrets("api_key", "CANARYKEY0123abcd", "api_secret", "CANARYSECRET"))
	if err != nil {
		t.Fatal(err)
	}
	ev := cr.Configured("u1", "0011223344556677")
	b, _ := json.Marshal(ev.Data)
	if ev.Type != domain.EventSecretConfigured || strings.Contains(string(b), "CANARY") ||
		string(b) != `{"user_id":"u1","exchange":"BINANCE","api_key_hint":"****abcd","key_id":"0011223344556677","fields":["api_key","api_secret"]}` {
		t.Fatalf("event %s: %s", ev.Type, b)
	}
}

func TestParseEncryptionKey(t *testing.T) {
	raw := []byte("0123456789abcdefghijklmnopqrstuv")
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		got, err := domain.ParseEncryptionKey("k", domain.NewSecret(enc.EncodeToString(raw)))
		if err != nil || string(got) != string(raw) {
			t.Fatalf("%v: %v", enc, err)
		}
	}
	for in, code := range map[string]string{
		"":           "missing_field",
		"Q0FOQVJZ":   "invalid_key", // 6 bytes
		"!!CANARY!!": "invalid_key",
		base64.StdEncoding.EncodeToString(make([]byte, 32)):                         "invalid_key",
		base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\x07", 32))):       "invalid_key",
		base64.StdEncoding.EncodeToString([]byte(strings.Repeat("CANARY", 6)[:33])): "invalid_key",
		// The weak-key rule SECRET_KEY goes through: a repeated pattern,
		// too few distinct bytes, too little entropy.
		base64.StdEncoding.EncodeToString([]byte(strings.Repeat("0123456789abcdef", 2))):  "invalid_key",
		base64.StdEncoding.EncodeToString([]byte(strings.Repeat("abcdefg", 5)[:32])):      "invalid_key",
		base64.StdEncoding.EncodeToString([]byte(strings.Repeat("a", 22) + "0123456789")): "invalid_key",
	} {
		_, err := domain.ParseEncryptionKey("new_key", domain.NewSecret(in))
		var e *domain.Error
		if !errors.As(err, &e) || e.Code != code || !strings.Contains(e.Message, "new_key") {
			t.Errorf("%q: got %v, want %s naming new_key", in, err, code)
			continue
		}
		if in != "" && strings.Contains(e.Message, in) {
			t.Errorf("%q: message echoes the key: %s", in, e.Message)
		}
	}
}

// A deployment still on a key the strength rule refuses must be able to
// rotate away from it: the old key of a rotation is checked for format only.
func TestDecodeEncryptionKeyAcceptsAWeakOldKey(t *testing.T) {
	weak := base64.StdEncoding.EncodeToString(make([]byte, 32))
	if _, err := domain.ParseEncryptionKey("new_key", domain.NewSecret(weak)); err == nil {
		t.Fatal("ParseEncryptionKey accepted an all-zero key")
	}
	got, err := domain.DecodeEncryptionKey("old_key", domain.NewSecret(weak))
	if err != nil || len(got) != 32 {
		t.Fatalf("DecodeEncryptionKey(all-zero) = %d bytes, %v", len(got), err)
	}
	for _, bad := range []string{"", "Q0FOQVJZ", "!!CANARY!!"} {
		if _, err := domain.DecodeEncryptionKey("old_key", domain.NewSecret(bad)); err == nil {
			t.Errorf("DecodeEncryptionKey(%q) accepted a malformed key", bad)
		}
	}
}
