package projections

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
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
// It scans the JSON once without decoding it and copies only when it must
// rewrite something — a secret value, or an escaped string, which is
// re-encoded with NUL characters replaced (jsonb rejects them) — so most
// payloads come back as they are, without a copy: a rebuild redacts a
// million payloads, and decoding each into maps cost more than the rest of
// the rebuild's Go code together.
func redact(data json.RawMessage) (json.RawMessage, error) {
	if len(data) == 0 {
		return json.RawMessage("null"), nil
	}
	var r redactor
	return r.redact(data)
}

// Redactor redacts payloads exactly as the audit log stores them, for the
// other places events leave the database (the broker export): one rule, so
// nothing a person may read holds more than the audit log shows. The result
// of Redact is valid until its next call; use one Redactor per goroutine.
type Redactor struct{ r redactor }

// Redact returns data with every secret-looking key's value replaced.
func (x *Redactor) Redact(data []byte) ([]byte, error) { return x.r.redact(data) }

// redactor redacts payloads one after the other, reusing its buffers: the
// result of redact is valid until the next call.
type redactor struct {
	in   []byte
	i    int
	out  []byte // the rewritten payload up to in[done]; empty until the first rewrite
	done int
	buf  []byte // out's storage, kept across payloads
	low  []byte // mayHoldSecret's lower-cased copy, kept across payloads
	copy bool   // something was rewritten: the result is out
}

func (r *redactor) redact(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return json.RawMessage("null"), nil
	}
	if !r.mayHoldSecret(data) {
		return data, nil
	}
	r.in, r.i, r.out, r.done, r.copy = data, 0, r.buf[:0], 0, false
	if err := r.value(); err != nil {
		return nil, err
	}
	if r.skipSpace(); r.i != len(r.in) {
		return nil, r.errorf("data after the value")
	}
	if !r.copy {
		return data, nil
	}
	r.out = append(r.out, r.in[r.done:]...)
	r.buf = r.out
	return r.out, nil
}

// rewrite replaces in[from:to] with with.
func (r *redactor) rewrite(from, to int, with []byte) {
	r.out = append(append(r.out, r.in[r.done:from]...), with...)
	r.done, r.copy = to, true
}

// mayHoldSecret is the fast path: most payloads contain no secret word at
// all and are kept byte for byte without scanning. secretKey joins a key's
// letters and digits, lower-cased, so the payload's letters and digits,
// lower-cased and joined, contain every key's joined form: when they hold no
// secret word, no key does ("pa ss_word" is a password key). An escape could
// spell a letter or a separator in disguise, and a non-ASCII character could
// be a separator or lower-case to ASCII (the Kelvin sign): either takes the
// slow path.
func (r *redactor) mayHoldSecret(data []byte) bool {
	low := r.low[:0]
	for _, c := range data {
		switch {
		case c >= utf8.RuneSelf || c == '\\':
			return true
		case 'A' <= c && c <= 'Z':
			low = append(low, c+'a'-'A')
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			low = append(low, c)
		}
	}
	r.low = low
	for _, w := range secretWords {
		if bytes.Contains(low, []byte(w)) {
			return true
		}
	}
	return false
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
	start := r.i // number, true, false, null: kept as they are
	for r.i < len(r.in) && strings.IndexByte(",}] \t\n\r", r.in[r.i]) < 0 {
		r.i++
	}
	if start == r.i {
		return r.errorf("unexpected %q", r.in[r.i])
	}
	return nil
}

var redactedValue = []byte(`"` + Redacted + `"`)

func (r *redactor) object() error {
	r.i++
	r.skipSpace()
	if r.i < len(r.in) && r.in[r.i] == '}' {
		r.i++
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
		r.skipSpace()
		if secretKey(key) && !r.harmless() {
			// Scan the value for its end (and validity), then replace it
			// whole, whatever its own rewrites were.
			start, mark, done, copied := r.i, len(r.out), r.done, r.copy
			if err := r.value(); err != nil {
				return err
			}
			r.out, r.done, r.copy = r.out[:mark], done, copied
			r.rewrite(start, r.i, redactedValue)
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
		case '}':
			r.i++
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
	r.i++
	r.skipSpace()
	if r.i < len(r.in) && r.in[r.i] == ']' {
		r.i++
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
		case ']':
			r.i++
			return nil
		default:
			return r.errorf("want ',' or ']'")
		}
	}
}

// str scans the string token at r.i and returns its decoded value (the
// token's own bytes when it has no escapes). An escaped token is rewritten
// re-encoded, with every NUL replaced by U+FFFD.
func (r *redactor) str() ([]byte, error) {
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
		return nil, r.errorf("unterminated string")
	}
	r.i++
	tok := r.in[start:r.i]
	if !escaped {
		return tok[1 : len(tok)-1], nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return nil, r.errorf("bad string: %v", err)
	}
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	enc, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	r.rewrite(start, r.i, enc)
	return []byte(s), nil
}

// secretKey reports whether a key names a secret. Identifiers and hints of
// secrets ("key_id", "api_key_hint", "old_key_id") are public by design.
//
// The key is split into words, lower-cased, at punctuation and camelCase
// boundaries ("apiKeyHint" and "api_key_hint" both give [api key hint]); it
// is secret when the words joined contain a secret word, unless the last of
// several words is "id", "ids" or "hint". ASCII keys are checked without
// allocating; others go through splitWords.
func secretKey(k []byte) bool {
	var stack [64]byte
	joined := stack[:0] // the words, lower-cased, without separators
	words, last, cur := 0, 0, 0
	var prev byte
	for _, c := range k {
		if c >= utf8.RuneSelf {
			return secretWordsKey(splitWords(string(k)))
		}
		lower, upper, digit := 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9'
		prevLowerOrDigit := ('a' <= prev && prev <= 'z') || ('0' <= prev && prev <= '9')
		prev = c
		switch {
		case !lower && !upper && !digit:
			cur = 0 // a separator ends the word
			continue
		case upper && prevLowerOrDigit:
			cur = 0 // camelCase: a new word
		}
		if cur == 0 {
			words, last = words+1, len(joined)
		}
		if upper {
			c += 'a' - 'A'
		}
		joined = append(joined, c)
		cur++
	}
	if words > 1 {
		switch string(joined[last:]) {
		case "id", "ids", "hint":
			return false
		}
	}
	for _, w := range secretWords {
		if bytes.Contains(joined, []byte(w)) {
			return true
		}
	}
	return false
}

// secretWordsKey is secretKey's rule over words already split.
func secretWordsKey(words []string) bool {
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
