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

func TestIssueAndVerify(t *testing.T) {
	tokens, err := token.New(key, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.UTC)
	at, err := tokens.Issue("user-1", now)
	if err != nil || at.ExpiresIn != 15*time.Minute {
		t.Fatal(at, err)
	}
	parts := strings.Split(at.Token.Reveal(), ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"iss": `"tradeops"`, "aud": `["tradeops-api"]`, "sub": `"user-1"`, "iat": "1772600767.891234", "exp": "1772601667"} {
		if string(claims[k]) != want {
			t.Errorf("%s = %s, want %s", k, claims[k], want)
		}
	}
	if len(claims["jti"]) < 30 {
		t.Errorf("jti %s", claims["jti"])
	}
	c, err := tokens.Verify(at.Token, now.Add(time.Minute))
	if err != nil || c.UserID != "user-1" || !c.IssuedAt.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("verify: %+v %v", c, err)
	}
	if _, err := tokens.Verify(at.Token, now.Add(15*time.Minute)); err == nil {
		t.Fatal("expired token accepted")
	}
}

func TestOnlyHS256(t *testing.T) {
	tokens, _ := token.New(key, time.Minute)
	now := time.Now()
	claims := jwt.MapClaims{"iss": "tradeops", "aud": "tradeops-api", "sub": "u", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
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
