package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// Redacted replaces the value of every payload key that looks secret.
const Redacted = "[REDACTED]"

// secretWords mark a key as secret wherever they appear in it ("api_key",
// "new_password", "otpauth_url", "totp_seed", ...). Over-redacting is cheap;
// one leaked secret is not.
var secretWords = []string{"password", "passwd", "secret", "otp", "token", "seed", "ciphertext", "key"}

// redact returns data with the value of every key that looks secret
// replaced by "[REDACTED]", at any depth. Events never carry secrets (DESIGN
// §2); this is defense in depth for the one read model shown to people.
//
// It scans the JSON once and copies it, rewriting only secret values (and
// NUL characters, which jsonb rejects): a rebuild redacts a million payloads,
// and decoding each into maps cost more than the rest of the rebuild's Go
// code together.
func redact(data json.RawMessage) (json.RawMessage, error) {
	if len(data) == 0 {
		return json.RawMessage("null"), nil
	}
	if !mayHoldSecret(data) {
		return data, nil
	}
	r := redactor{in: data, out: make([]byte, 0, len(data))}
	if err := r.value(); err != nil {
		return nil, err
	}
	if r.skipSpace(); r.i != len(r.in) {
		return nil, r.errorf("data after the value")
	}
	return r.out, nil
}

// mayHoldSecret is the fast path: most payloads contain no secret word at
// all and are kept byte for byte without scanning. A \u escape could spell
// a key (or a NUL) in disguise, so it always takes the slow path.
func mayHoldSecret(data []byte) bool {
	lower := bytes.ToLower(data)
	if bytes.Contains(lower, []byte(`\u`)) {
		return true
	}
	for _, w := range secretWords {
		if bytes.Contains(lower, []byte(w)) {
			return true
		}
	}
	return false
}

// redactor copies the JSON value in `in` to `out`, token by token.
type redactor struct {
	in  []byte
	i   int
	out []byte
}

func (r *redactor) errorf(format string, args ...any) error {
	return fmt.Errorf("payload is not valid JSON at byte %d: %s", r.i, fmt.Sprintf(format, args...))
}

func (r *redactor) skipSpace() {
	for r.i < len(r.in) && (r.in[r.i] == ' ' || r.in[r.i] == '\t' || r.in[r.i] == '\n' || r.in[r.i] == '\r') {
		r.i++
	}
}

func (r *redactor) value() error {
	r.skipSpace()
	if r.i >= len(r.in) {
		return r.errorf("unexpected end")
	}
	switch r.in[r.i] {
	case '{':
		return r.object()
	case '[':
		return r.array()
	case '"':
		_, err := r.str()
		return err
	}
	start := r.i // number, true, false, null: copied as they are
	for r.i < len(r.in) && strings.IndexByte(",}] \t\n\r", r.in[r.i]) < 0 {
		r.i++
	}
	if start == r.i {
		return r.errorf("unexpected %q", r.in[r.i])
	}
	r.out = append(r.out, r.in[start:r.i]...)
	return nil
}

func (r *redactor) object() error {
	r.out = append(r.out, '{')
	r.i++
	r.skipSpace()
	if r.i < len(r.in) && r.in[r.i] == '}' {
		r.i++
		r.out = append(r.out, '}')
		return nil
	}
	for {
		r.skipSpace()
		if r.i >= len(r.in) || r.in[r.i] != '"' {
			return r.errorf("want an object key")
		}
		key, err := r.str()
		if err != nil {
			return err
		}
		r.skipSpace()
		if r.i >= len(r.in) || r.in[r.i] != ':' {
			return r.errorf("want ':'")
		}
		r.i++
		r.out = append(r.out, ':')
		r.skipSpace()
		if secretKey(key) && !r.harmless() {
			mark := len(r.out)
			if err := r.value(); err != nil {
				return err
			}
			r.out = append(r.out[:mark], `"`+Redacted+`"`...)
		} else if err := r.value(); err != nil {
			return err
		}
		r.skipSpace()
		if r.i >= len(r.in) {
			return r.errorf("unterminated object")
		}
		switch r.in[r.i] {
		case ',':
			r.i++
			r.out = append(r.out, ',')
		case '}':
			r.i++
			r.out = append(r.out, '}')
			return nil
		default:
			return r.errorf("want ',' or '}'")
		}
	}
}

// harmless values cannot hold a secret: flags such as "totp_enabled" and
// absent values stay readable.
func (r *redactor) harmless() bool {
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(r.in[r.i:], []byte(lit)) {
			return true
		}
	}
	return false
}

func (r *redactor) array() error {
	r.out = append(r.out, '[')
	r.i++
	r.skipSpace()
	if r.i < len(r.in) && r.in[r.i] == ']' {
		r.i++
		r.out = append(r.out, ']')
		return nil
	}
	for {
		if err := r.value(); err != nil {
			return err
		}
		r.skipSpace()
		if r.i >= len(r.in) {
			return r.errorf("unterminated array")
		}
		switch r.in[r.i] {
		case ',':
			r.i++
			r.out = append(r.out, ',')
		case ']':
			r.i++
			r.out = append(r.out, ']')
			return nil
		default:
			return r.errorf("want ',' or ']'")
		}
	}
}

// str copies the string token at r.i, with every \u0000 escape replaced by
// \ufffd, and returns its decoded value.
func (r *redactor) str() (string, error) {
	start := r.i
	r.i++
	escaped := false
	for r.i < len(r.in) && r.in[r.i] != '"' {
		if r.in[r.i] == '\\' {
			escaped = true
			r.i++
		}
		r.i++
	}
	if r.i >= len(r.in) {
		return "", r.errorf("unterminated string")
	}
	r.i++
	tok := r.in[start:r.i]
	if !escaped {
		r.out = append(r.out, tok...)
		return string(tok[1 : len(tok)-1]), nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return "", r.errorf("bad string: %v", err)
	}
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	enc, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	r.out = append(r.out, enc...)
	return s, nil
}

// secretKey reports whether a key names a secret. Identifiers and hints of
// secrets ("key_id", "api_key_hint", "old_key_id") are public by design.
func secretKey(k string) bool {
	words := splitWords(k)
	if n := len(words); n > 1 {
		switch words[n-1] {
		case "id", "ids", "hint":
			return false
		}
	}
	joined := strings.Join(words, "")
	for _, w := range secretWords {
		if strings.Contains(joined, w) {
			return true
		}
	}
	return false
}

// splitWords lower-cases k and splits it at punctuation and camelCase
// boundaries: "apiKeyHint" and "api_key_hint" both give [api key hint].
func splitWords(k string) []string {
	var words []string
	var cur []rune
	var prev rune
	flush := func() {
		if len(cur) > 0 {
			words = append(words, string(cur))
			cur = cur[:0]
		}
	}
	for _, r := range k {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && (unicode.IsLower(prev) || unicode.IsDigit(prev)):
			flush()
			cur = append(cur, unicode.ToLower(r))
		default:
			cur = append(cur, unicode.ToLower(r))
		}
		prev = r
	}
	flush()
	return words
}
