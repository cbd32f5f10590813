// Package app holds tradeops' use cases: one command or query handler per
// file, and the interfaces (ports to adapters) each of them needs.
package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// Caller is who asked for a command and from where. It becomes the metadata
// of every event the command appends (actor, correlation id, client IP).
type Caller struct {
	UserID    string
	Email     string
	Role      domain.Role
	RequestID string
	ClientIP  string
}

type callerKey struct{}

// WithCaller returns ctx carrying c; the HTTP port and the CLI set it.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller carried by ctx (zero when none).
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}
