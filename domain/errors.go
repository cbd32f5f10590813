// Package domain holds tradeops' pure business types: errors, the events
// catalogue, users, risk rules. It imports no adapter, no database driver and
// no HTTP package.
package domain

import (
	"errors"
	"fmt"
)

// Kind classifies an error once, where it is raised; ports map a Kind to a
// transport status (HTTP code, exit code) and never inspect messages.
type Kind string

const (
	KindInvalid         Kind = "invalid"          // bad input from the caller
	KindUnprocessable   Kind = "unprocessable"    // well-formed, but refused as it stands (a risk rejection)
	KindUnauthorized    Kind = "unauthorized"     // no or bad credentials
	KindForbidden       Kind = "forbidden"        // authenticated but not allowed
	KindNotFound        Kind = "not_found"        // the thing does not exist
	KindConflict        Kind = "conflict"         // concurrent change, duplicate
	KindTooMany         Kind = "too_many"         // throttled
	KindUnavailable     Kind = "unavailable"      // a dependency is down
	KindUpstream        Kind = "upstream"         // an exchange answered with an error
	KindUpstreamTimeout Kind = "upstream_timeout" // an exchange did not answer in time
	KindInternal        Kind = "internal"         // a bug or an unexpected failure
)

// Error is a classified error. Code is a stable, machine-readable string
// (e.g. "invalid_credentials") that clients may switch on; Message is safe to
// show to the caller and must never contain a secret.
type Error struct {
	Kind    Kind
	Code    string
	Message string
	// RetryAfterSeconds is set for KindTooMany and rate-limited upstreams.
	RetryAfterSeconds int
	// Err is the cause, kept for logs; it is never shown to the caller.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a classified error with a formatted, caller-safe message.
func Errorf(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap classifies cause under kind and code with a caller-safe message.
func Wrap(cause error, kind Kind, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Err: cause}
}

// ErrConcurrency means a concurrent change to the same stream won the race;
// the caller may reload and retry. The adapters that append events map the
// event store's own sentinel to it.
var ErrConcurrency = Errorf(KindConflict, "concurrency_conflict", "the stream was changed concurrently; reload and retry")

// ErrorKind returns the Kind of the first *Error in err's chain, or
// KindInternal when there is none.
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}
