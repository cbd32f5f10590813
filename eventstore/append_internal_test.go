package eventstore

import (
	"encoding/json"
	"strconv"
	"testing"
)

// metadataMap is the watermill message metadata of an appended event, what
// appendMetadataJSON must encode exactly as json.Marshal would.
func metadataMap(md Metadata, stream string, e NewEvent, expected ExpectedVersion, recordedAt string) map[string]string {
	m := map[string]string{
		mdStreamID: stream, mdEventType: e.Type, mdSchemaVersion: strconv.Itoa(e.SchemaVersion),
		mdExpectedVersion: strconv.FormatInt(int64(expected), 10), mdRecordedAt: recordedAt,
	}
	for k, v := range map[string]string{"actor_id": md.ActorID, "actor_email": md.ActorEmail, "correlation_id": md.CorrelationID,
		"causation_id": md.CausationID, "client_ip": md.ClientIP} {
		if v != "" {
			m[k] = v
		}
	}
	return m
}

func FuzzAppendMetadataJSONIsJSONMarshal(f *testing.F) {
	f.Add("0190f3c2-0000-7000-8000-00000000a11c", "o'neil+\"x\"@example.com", "req-1", "", "2001:db8::1", "user-1", "auth.login.success")
	f.Add("", "<b>&amp;</b>", "\u2028\u2029", "\x00\x1f\x7f", "\xff\xfe", `back\slash`, "é🙂")
	f.Fuzz(func(t *testing.T, actor, email, corr, cause, ip, stream, typ string) {
		md := Metadata{ActorID: actor, ActorEmail: email, CorrelationID: corr, CausationID: cause, ClientIP: ip}
		e := NewEvent{Type: typ, SchemaVersion: 3}
		want, err := json.Marshal(metadataMap(md, stream, e, Exact(7), "2024-02-29T18:29:58.123456Z"))
		if err != nil {
			t.Fatal(err)
		}
		if got := appendMetadataJSON(nil, md, stream, e, Exact(7), "2024-02-29T18:29:58.123456Z"); string(got) != string(want) {
			t.Fatalf("appendMetadataJSON:\n got  %s\n want %s", got, want)
		}
	})
}
