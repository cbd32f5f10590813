package app

import (
	"context"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// AccessState is what authenticating a token needs to know about its user.
type AccessState struct {
	Email            string
	Role             domain.Role
	TokensValidAfter time.Time
}

// AccessStates looks access states up. It runs on every authenticated
// request, so implementations may cache briefly (see adapters/postgres).
type AccessStates interface {
	// AccessState is KindNotFound for an unknown user.
	AccessState(ctx context.Context, userID string) (AccessState, error)
}

// AuthenticateHandler turns a bearer token into the caller it speaks for.
type AuthenticateHandler struct {
	tokens Tokens
	states AccessStates
	clock  Clock
}

func NewAuthenticateHandler(tokens Tokens, states AccessStates, clock Clock) *AuthenticateHandler {
	return &AuthenticateHandler{tokens: tokens, states: states, clock: clock}
}

// Handle returns ctx's caller (request id, client IP kept) with the token's
// user, email and role. Any problem with the token is one 401: the reason
// stays in the wrapped cause, for logs.
func (h *AuthenticateHandler) Handle(ctx context.Context, token domain.Secret) (Caller, error) {
	claims, err := h.tokens.Verify(token, h.clock.Now())
	if err != nil {
		return Caller{}, domain.Wrap(err, errUnauthenticated.Kind, errUnauthenticated.Code, errUnauthenticated.Message)
	}
	st, err := h.states.AccessState(ctx, claims.UserID)
	switch {
	case domain.ErrorKind(err) == domain.KindNotFound:
		return Caller{}, errUnauthenticated
	case err != nil:
		return Caller{}, err
	case domain.TokenRevoked(claims.IssuedAt, st.TokensValidAfter):
		return Caller{}, errUnauthenticated
	}
	c := CallerFrom(ctx)
	c.UserID, c.Email, c.Role = claims.UserID, st.Email, st.Role
	return c, nil
}
