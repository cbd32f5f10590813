package projections

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// canaryPayload hides canary values under every kind of secret-looking key,
// at every depth.
const canaryPayload = `{
	"exchange": "BINANCE", "api_key_hint": "****abcd", "key_id": "a1b2c3d4", "old_key_id": "k0", "totp_enabled": true,
	"password": "canary-1", "new_password": "canary-2", "api_key": "canary-3", "api_secret": "canary-4",
	"otp": 123456, "otpauth_url": "otpauth://totp/x?secret=canary-5", "totp_seed": "canary-6", "access_token": "canary-7",
	"ciphertext": "canary-8", "encryption_key": "canary-9", "key": {"nested": "canary-10"},
	"accounts": [{"apiSecret": "canary-11", "apiKeyHint": "****wxyz"}, {"sessionToken": ["canary-12"]}],
	"deep": {"deeper": {"Password": "canary-13", "seed": "canary-14", "privateKey": "canary-15"}},
	"pass\u0077ord": "canary-16", "note": "nul\u0000byte"
}`

func TestRedactHidesEverySecretAndKeepsTheRest(t *testing.T) {
	out, err := redact(json.RawMessage(canaryPayload))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "canary") {
		t.Fatalf("a secret survived: %s", out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"exchange": "BINANCE", "api_key_hint": "****abcd", "key_id": "a1b2c3d4",
		"old_key_id": "k0", "totp_enabled": true, "password": Redacted, "otp": Redacted, "key": Redacted, "note": "nul\uFFFDbyte"} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if hint := got["accounts"].([]any)[0].(map[string]any)["apiKeyHint"]; hint != "****wxyz" {
		t.Errorf("camelCase hint redacted: %v", hint)
	}
}

// A key is split into words at punctuation, so a secret word can be spread
// over several parts of it; the fast path must not miss it.
func TestRedactFindsSecretWordsAcrossSeparators(t *testing.T) {
	for _, in := range []string{`{"pa   ssword":"x"}`, `{"to-ken":"x"}`, `{"api.K_e_Y":"x"}`, `{"a":{"Se Ed":"x"}}`} {
		out, err := redact(json.RawMessage(in))
		if err != nil || !strings.Contains(string(out), Redacted) {
			t.Errorf("redact(%s) = %s, %v", in, out, err)
		}
	}
}

func TestRedactKeepsPlainPayloadsByteForByte(t *testing.T) {
	in := json.RawMessage(`{"symbol":"BTCUSDT",  "qty":"0.01","price":1e3}`)
	out, err := redact(in)
	if err != nil || string(out) != string(in) {
		t.Fatalf("%s %v", out, err)
	}
}

// End to end: canaries appended in an event never reach the audit_log rows.
func TestNoSecretReachesTheAuditLog(t *testing.T) {
	env := newEnv(t)
	env.appendOne(t, "user-1", "user-1", "secrets.exchange.configured", json.RawMessage(canaryPayload))
	env.drain(t, AuditLog{})
	if n := env.count(t, `SELECT count(*) FROM audit_log WHERE data::text LIKE '%canary%'`); n != 0 {
		t.Fatal("a canary reached audit_log")
	}
	if n := env.count(t, `SELECT count(*) FROM audit_log WHERE data->>'password' = $1`, Redacted); n != 1 {
		t.Fatal("the event is missing from audit_log")
	}
}

// redactReference is the obvious implementation — decode, walk, encode —
// that the scanning redact must agree with.
func redactReference(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var walk func(any) any
	walk = func(v any) any {
		switch v := v.(type) {
		case map[string]any:
			out := map[string]any{}
			for k, x := range v {
				k = strings.ReplaceAll(k, "\x00", "\uFFFD")
				switch {
				case !secretKey([]byte(k)):
					out[k] = walk(x)
				case x == nil:
					out[k] = nil
				default:
					if _, isBool := x.(bool); isBool {
						out[k] = x
					} else {
						out[k] = Redacted
					}
				}
			}
			return out
		case []any:
			for i := range v {
				v[i] = walk(v[i])
			}
		case string:
			return strings.ReplaceAll(v, "\x00", "\uFFFD")
		}
		return v
	}
	return walk(v), nil
}

func decodeNumbers(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("redact produced invalid JSON %q: %v", b, err)
	}
	return v
}

func FuzzRedactAgreesWithTheReference(f *testing.F) {
	for _, s := range []string{canaryPayload, `{}`, `[]`, `"x"`, `1`, `null`, `{"a":[{"token":{"x":[1,2]}},{"b":"c\"d"}]}`,
		`{"pass\u0077ord":"x","k\u0000ey":"\u0000"}`, `{"otp":true,"seed":null,"secret":false,"key":0.5e-3}`, ` { "Token" : " s " } `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want, err := redactReference(data)
		if err != nil || !json.Valid(data) {
			return // the store only holds valid JSON
		}
		got, err := redact(data)
		if err != nil {
			t.Fatalf("redact(%q): %v", data, err)
		}
		if g := decodeNumbers(t, got); !reflect.DeepEqual(g, want) {
			t.Fatalf("redact(%q) = %s, want %v", data, got, want)
		}
	})
}

// secretKey's allocation-free ASCII path agrees with the word splitting
// it replaces.
func FuzzSecretKeyAgreesWithSplitWords(f *testing.F) {
	for _, s := range []string{"api_key", "apiKeyHint", "old_key_id", "totpSeed", "X2Key", "KEYID", "key__id", "_id", "a.b-c d",
		"SessionTOKEN", "passwd2", "ids", "keyIds", "hint", "K\u212aey", "ID", "userID", "Key9id"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		if got, want := secretKey([]byte(k)), secretWordsKey(splitWords(k)); got != want {
			t.Fatalf("secretKey(%q) = %v, splitWords says %v (%q)", k, got, want, splitWords(k))
		}
	})
}
