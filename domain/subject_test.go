package domain_test

import (
	"strings"
	"testing"

	"github.com/tradeops/tradeops/domain"
)

func TestEventSubject(t *testing.T) {
	const id = "0b7e8a52-3c1f-4e55-9d0a-6f4f1a2b3c4d"
	long := strings.Repeat("a", domain.MaxSubjectLen+1)
	for _, tc := range []struct {
		stream, payload, want string
	}{
		{domain.UserStream(id), `{"from":"operator","to":"admin"}`, id}, // user.role.changed by an admin
		{domain.UserStream(id), `{"user_id":"someone-else"}`, id},       // the stream decides
		{domain.LoginStream("ops@example.com"), `{"email":"ops@example.com","user_id":"` + id + `","reason":"invalid_credentials"}`, id},
		{domain.LoginStream("nobody@example.com"), `{"email":"nobody@example.com","reason":"invalid_credentials"}`, ""}, // no account
		{"execution-1", `{"symbol":"BTCUSDT"}`, ""},
		{"x", `{"user\u005fid":"` + id + `"}`, id}, // an escaped key is the same key
		{"x", `{"USER_ID":"` + id + `"}`, ""},      // keys are case-sensitive
		{"x", `{"user_id":42}`, ""},
		{"x", `{"user_id":null}`, ""},
		{"x", `{"user_id":""}`, ""},
		{"x", `{"user_id":"` + long + `"}`, ""},
		{"x", `{"nested":{"user_id":"` + id + `"}}`, ""}, // top level only
		{"x", `{"user_id":"a","user_id":"b"}`, "b"},      // the last one, as jsonb keeps it
		{"x", `["user_id"]`, ""},
		{"x", `not json "user_id"`, ""},
		{"user-", `{"user_id":"` + id + `"}`, id}, // an empty stream suffix names no one
		{"user-" + long, `{}`, ""},
	} {
		if got := domain.EventSubject(tc.stream, []byte(tc.payload)); got != tc.want {
			t.Errorf("EventSubject(%q, %s) = %q, want %q", tc.stream, tc.payload, got, tc.want)
		}
	}
}
