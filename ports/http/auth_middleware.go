package http

import (
	"context"
	"net/http"
	"strings"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
)

// Authenticator guards routes with bearer tokens. Other features use its
// middleware: r.Use(auth.RequireUser) or auth.RequireAdmin, then read the
// user with app.CallerFrom(ctx).
type Authenticator struct {
	authenticate func(ctx context.Context, token domain.Secret) (app.Caller, error)
}

// NewAuthenticator returns the middleware over the app's authentication.
func NewAuthenticator(h *app.AuthenticateHandler) *Authenticator {
	return &Authenticator{authenticate: h.Handle}
}

// RequireUser lets a request through only with a valid, unrevoked bearer
// token, and puts its user into the request's caller (request id and
// client IP kept). Otherwise: 401 unauthorized with WWW-Authenticate.
func (a *Authenticator) RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tradeops"`)
			writeErrorStatus(w, http.StatusUnauthorized, "unauthorized", "missing bearer token (Authorization: Bearer <access_token>)")
			return
		}
		caller, err := a.authenticate(r.Context(), token)
		if err != nil {
			if domain.ErrorKind(err) == domain.KindUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tradeops", error="invalid_token"`)
			}
			WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(app.WithCaller(r.Context(), caller)))
	})
}

// RequireAdmin is RequireUser plus 403 forbidden for non-admins. It
// authenticates by itself when RequireUser did not run before it.
func (a *Authenticator) RequireAdmin(next http.Handler) http.Handler {
	adminOnly := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if app.CallerFrom(r.Context()).Role != domain.RoleAdmin {
			writeErrorStatus(w, http.StatusForbidden, "forbidden", "this endpoint is for administrators")
			return
		}
		next.ServeHTTP(w, r)
	})
	authenticated := a.RequireUser(adminOnly)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if app.CallerFrom(r.Context()).UserID != "" {
			adminOnly.ServeHTTP(w, r)
			return
		}
		authenticated.ServeHTTP(w, r)
	})
}

func bearerToken(r *http.Request) (domain.Secret, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return domain.Secret{}, false
	}
	return domain.NewSecret(token), true
}
