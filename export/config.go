// Package export relays the event stream to NATS JetStream: every event of
// the store, once, in store order, as the JSON line `tradeops events replay`
// prints (payload redacted as in the audit log), so that a SIEM and
// downstream services read a broker instead of polling PostgreSQL.
//
// The relay reads keyset batches below the xmin horizon like every
// projection, publishes them asynchronously with each message chained to
// the one before it (the broker refuses the rest of a window once one
// message fails, so nothing lands out of order), and moves its checkpoint
// in PostgreSQL once the broker acknowledged the batch. The broker's stream
// is the truth of what was exported: a relay starting up resumes after the
// position its last message carries. One relay per export holds a
// PostgreSQL advisory lock; others wait.
package export

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config says where and how the events are exported.
type Config struct {
	// URL is the NATS server URL (nats://user:pass@host:4222; comma
	// separated for a cluster). It may hold credentials: never log it,
	// log Redacted().
	URL string
	// Stream is the JetStream stream's name, also the checkpoint's name.
	Stream string
	// SubjectPrefix: an event of type T is published to "<prefix>.<T>";
	// the stream captures "<prefix>.>".
	SubjectPrefix string
	// Replicas of the stream when the relay creates it (R3 in production:
	// NATS 2.9 acknowledges before it flushes its files).
	Replicas int
	// Duplicates is the stream's duplicate window when the relay creates
	// it: a re-publish within it is dropped by the broker.
	Duplicates time.Duration
}

// Defaults for the fields a deployment usually leaves alone.
const (
	DefaultStream        = "TRADEOPS_EVENTS"
	DefaultSubjectPrefix = "tradeops.events"
	DefaultDuplicates    = 2 * time.Minute
)

// Validate reports the first unusable field, naming it (and never the URL's
// credentials).
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("no NATS URL")
	}
	for _, u := range strings.Split(c.URL, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil || p.Hostname() == "" {
			return fmt.Errorf("NATS URL %q: want nats://host:port (comma separated for several servers)", redactURL(u))
		}
		switch p.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("NATS URL %q: scheme must be nats, tls, ws or wss", redactURL(u))
		}
	}
	if c.Stream == "" || strings.ContainsAny(c.Stream, ". \t\r\n*>/\\") {
		return fmt.Errorf("stream name %q: want a name without spaces, dots, *, >, / or \\", c.Stream)
	}
	if !validSubject(c.SubjectPrefix) || strings.ContainsAny(c.SubjectPrefix, "*>") {
		return fmt.Errorf("subject prefix %q: want dot-separated tokens without spaces, * or >", c.SubjectPrefix)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("replicas %d: want 1 to 5", c.Replicas)
	}
	if c.Duplicates < time.Second {
		return fmt.Errorf("duplicate window %s: want at least 1s", c.Duplicates)
	}
	return nil
}

// Redacted is the URL without passwords or tokens, for logs and errors.
func (c Config) Redacted() string {
	parts := strings.Split(c.URL, ",")
	for i, u := range parts {
		parts[i] = redactURL(u)
	}
	return strings.Join(parts, ",")
}

func redactURL(u string) string {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil {
		return "[unparsable URL]"
	}
	if p.User != nil {
		p.User = url.User("REDACTED")
	}
	return p.String()
}

func validSubject(s string) bool {
	if s == "" {
		return false
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
			return false
		}
	}
	return true
}

// Subject is where an event of type eventType is published. Event types
// are dot-separated audit names, which become subject tokens as they are;
// bytes a subject cannot carry (whitespace, the wildcards * and >) and empty
// tokens become "_", so any stored type still lands under the prefix.
func (c Config) Subject(eventType string) string {
	b := make([]byte, 0, len(c.SubjectPrefix)+1+len(eventType))
	b = append(append(b, c.SubjectPrefix...), '.')
	tokStart := len(b)
	for i := 0; i < len(eventType); i++ {
		switch ch := eventType[i]; ch {
		case ' ', '\t', '\r', '\n', '*', '>', 0:
			b = append(b, '_')
		case '.':
			if len(b) == tokStart {
				b = append(b, '_')
			}
			b = append(b, '.')
			tokStart = len(b)
		default:
			b = append(b, ch)
		}
	}
	if len(b) == tokStart {
		b = append(b, '_')
	}
	return string(b)
}
