package token_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tradeops/tradeops/adapters/token"
	"github.com/tradeops/tradeops/domain"
)

var key = []byte("0123456789abcdef0123456789abcdef")

const userID = "3f1c2a9e-8b7d-4c6e-9f0a-1b2c3d4e5f60"

func TestIssueAndVerify(t *testing.T) {
	tokens, err := token.New(key, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.UTC)
	at, err := tokens.Issue(userID, now)
	if err != nil || at.ExpiresIn != 15*time.Minute {
		t.Fatal(at, err)
	}
	parts := strings.Split(at.Token.Reveal(), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"iss": `"tradeops"`, "aud": `["tradeops-api"]`, "sub": `"` + userID + `"`, "iat": "1772600767.891234", "exp": "1772601667"} {
		if string(claims[k]) != want {
			t.Errorf("%s = %s, want %s", k, claims[k], want)
		}
	}
	if len(claims["jti"]) < 30 {
		t.Errorf("jti %s", claims["jti"])
	}
	c, err := tokens.Verify(at.Token, now.Add(time.Minute))
	if err != nil || c.UserID != userID || !c.IssuedAt.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if _, err := tokens.Verify(at.Token, now.Add(15*time.Minute)); err == nil {
		t.Fatal("expired token accepted")
	}
}

func TestOnlyHS256(t *testing.T) {
	tokens, _ := token.New(key, time.Minute)
	now := time.Now()
	claims := jwt.MapClaims{"iss": "tradeops", "aud": "tradeops-api", "sub": userID, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
	for _, m := range []jwt.SigningMethod{jwt.SigningMethodHS384, jwt.SigningMethodHS512} {
		s, _ := jwt.NewWithClaims(m, claims).SignedString(key)
		if _, err := tokens.Verify(domain.NewSecret(s), now); err == nil {
			t.Errorf("%s accepted", m.Alg())
		}
	}
	s, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if _, err := tokens.Verify(domain.NewSecret(s), now); err != nil {
		t.Errorf("HS256 with whole-second iat refused: %v", err)
	}
	if _, err := token.New([]byte("short"), time.Minute); err == nil {
		t.Error("short key accepted")
	}
}

// TestTimeAndSubjectClaims: tokens signed with the right key are still
// refused for a subject that is not a user id, an nbf in the future, or an
// iat further in the future than the clock skew allows.
func TestTimeAndSubjectClaims(t *testing.T) {
	tokens, _ := token.New(key, time.Minute)
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	sign := func(edit func(jwt.MapClaims)) domain.Secret {
		c := jwt.MapClaims{"iss": "tradeops", "aud": "tradeops-api", "sub": userID, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		edit(c)
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return domain.NewSecret(s)
	}
	for name, tc := range map[string]struct {
		edit func(jwt.MapClaims)
		ok   bool
	}{
		"sub not a uuid":        {func(c jwt.MapClaims) { c["sub"] = "admin" }, false},
		"sub uuid in braces":    {func(c jwt.MapClaims) { c["sub"] = "{" + userID + "}" }, false},
		"sub uuid upper case":   {func(c jwt.MapClaims) { c["sub"] = strings.ToUpper(userID) }, false},
		"sub uuid, no hyphens":  {func(c jwt.MapClaims) { c["sub"] = strings.ReplaceAll(userID, "-", "") }, false},
		"nbf in the future":     {func(c jwt.MapClaims) { c["nbf"] = now.Add(10 * time.Second).Unix() }, false},
		"nbf reached":           {func(c jwt.MapClaims) { c["nbf"] = now.Unix() }, true},
		"nbf not a number":      {func(c jwt.MapClaims) { c["nbf"] = "soon" }, false},
		"iat 31 s ahead":        {func(c jwt.MapClaims) { c["iat"] = now.Add(31 * time.Second).Unix() }, false},
		"iat a year ahead":      {func(c jwt.MapClaims) { c["iat"] = now.AddDate(1, 0, 0).Unix() }, false},
		"iat 30 s ahead (skew)": {func(c jwt.MapClaims) { c["iat"] = now.Add(30 * time.Second).Unix() }, true},
	} {
		_, err := tokens.Verify(sign(tc.edit), now)
		if tc.ok != (err == nil) {
			t.Errorf("%s: accepted=%v, want %v (%v)", name, err == nil, tc.ok, err)
		}
	}
}

// A token verified once is remembered, but every later use is still held
// to the time (expiry, issue time) and an altered token is never taken
// for a remembered one; past the bound the memory starts over and tokens
// keep verifying.
func TestRememberedTokens(t *testing.T) {
	tokens, _ := token.New(key, 15*time.Minute)
	now := time.Now().UTC()
	at, _ := tokens.Issue(userID, now)
	for range 3 {
		if c, err := tokens.Verify(at.Token, now.Add(time.Minute)); err != nil || c.UserID != userID {
			t.Fatalf("%+v %v", c, err)
		}
	}
	if _, err := tokens.Verify(at.Token, now.Add(15*time.Minute)); err == nil {
		t.Fatal("remembered token accepted after its expiry")
	}
	if _, err := tokens.Verify(at.Token, now.Add(-time.Minute)); err == nil {
		t.Fatal("remembered token accepted a minute before its issue")
	}
	s := at.Token.Reveal()
	altered := s[:len(s)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(s, "AA")]
	if _, err := tokens.Verify(domain.NewSecret(altered), now); err == nil {
		t.Fatal("altered token accepted")
	}
	for i := range 5000 {
		at, _ := tokens.Issue(userID, now.Add(time.Duration(i)*time.Microsecond))
		if _, err := tokens.Verify(at.Token, now.Add(time.Second)); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
	}
}
