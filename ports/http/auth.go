package http

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"

	"github.com/gorilla/mux"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
)

// Identity holds the use cases behind the /auth and /users/me routes.
type Identity struct {
	Login            *app.LoginHandler
	Logout           *app.LogoutHandler
	SetupTwoFactor   *app.SetupTwoFactorHandler
	EnableTwoFactor  *app.EnableTwoFactorHandler
	DisableTwoFactor *app.DisableTwoFactorHandler
	Me               *app.GetMeHandler
}

// IdentityRoutes registers login, logout, 2FA and /users/me (DESIGN §5).
func IdentityRoutes(id Identity, auth *Authenticator) Registrar {
	return func(r *mux.Router) {
		user := func(h http.HandlerFunc) http.Handler { return auth.RequireUser(h) }
		r.HandleFunc("/auth/login", id.login).Methods(http.MethodPost)
		r.Handle("/auth/logout", user(id.logout)).Methods(http.MethodPost)
		r.Handle("/auth/2fa/setup", user(id.setupTwoFactor)).Methods(http.MethodPost)
		r.Handle("/auth/2fa/enable", user(id.enableTwoFactor)).Methods(http.MethodPost)
		r.Handle("/auth/2fa/disable", user(id.disableTwoFactor)).Methods(http.MethodPost)
		r.Handle("/users/me", user(id.me)).Methods(http.MethodGet)
	}
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// login takes the OAuth2 password-grant form (username, password, optional
// otp; extra fields such as grant_type are ignored). Only the body is read:
// credentials in a URL end up in access logs.
func (id Identity) login(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		writeErrorStatus(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErrorStatus(w, http.StatusRequestEntityTooLarge, errTooLarge.Code, errTooLarge.Message)
			return
		}
		writeErrorStatus(w, http.StatusBadRequest, "malformed_form", "request body is not a valid form")
		return
	}
	if err := checkLoginForm(r.PostForm); err != nil {
		WriteError(w, r, err)
		return
	}
	cmd := app.Login{
		Username: r.PostForm.Get("username"),
		Password: domain.NewSecret(r.PostForm.Get("password")),
		OTP:      domain.NewSecret(r.PostForm.Get("otp")),
	}
	if cmd.Username == "" || cmd.Password.IsZero() {
		writeErrorStatus(w, http.StatusBadRequest, "missing_field", "username and password are required")
		return
	}
	tok, err := id.Login.Handle(r.Context(), cmd)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, tokenResponse{AccessToken: tok.Token.Reveal(), TokenType: "bearer", ExpiresIn: int(tok.ExpiresIn.Seconds())})
}

// loginFieldBytes bounds the login form: a username no account can have
// (longer than any email), a password no account can have (longer than
// domain.NewPassword allows) and a one-time code far longer than 6 digits
// are refused before the attempt is throttled, hashed or recorded.
var loginFieldBytes = []struct {
	name  string
	limit int
}{{"username", domain.MaxEmailLength}, {"password", domain.MaxPasswordLength}, {"otp", maxOTPBytes}}

// checkLoginForm refuses any form field (read or ignored) that is not
// valid text, and the login fields over their bound.
func checkLoginForm(form url.Values) error {
	if err := checkValues("form field", form, MaxBodyBytes); err != nil {
		return err
	}
	for _, f := range loginFieldBytes {
		for _, v := range form[f.name] {
			if err := checkText("form field", f.name, v, f.limit); err != nil {
				return err
			}
		}
	}
	return nil
}

func (id Identity) logout(w http.ResponseWriter, r *http.Request) {
	if err := id.Logout.Handle(r.Context()); err != nil {
		WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type twoFactorSetupResponse struct {
	Secret     string `json:"secret"`
	OTPAuthURL string `json:"otpauth_url"`
}

func (id Identity) setupTwoFactor(w http.ResponseWriter, r *http.Request) {
	s, err := id.SetupTwoFactor.Handle(r.Context())
	if err != nil {
		WriteError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, twoFactorSetupResponse{Secret: s.Secret.Reveal(), OTPAuthURL: s.OTPAuthURL.Reveal()})
}

type otpRequest struct {
	OTP string `json:"otp"`
}

type twoFactorStatus struct {
	TOTPEnabled bool `json:"totp_enabled"`
}

func (id Identity) enableTwoFactor(w http.ResponseWriter, r *http.Request) {
	id.confirmTwoFactor(w, r, id.EnableTwoFactor.Handle, true)
}

func (id Identity) disableTwoFactor(w http.ResponseWriter, r *http.Request) {
	id.confirmTwoFactor(w, r, id.DisableTwoFactor.Handle, false)
}

func (id Identity) confirmTwoFactor(w http.ResponseWriter, r *http.Request, handle func(context.Context, domain.Secret) error, enabled bool) {
	var req otpRequest
	if !DecodeJSON(w, r, &req) {
		return
	}
	if req.OTP == "" {
		writeErrorStatus(w, http.StatusBadRequest, "missing_field", `field "otp" is required`)
		return
	}
	if err := checkText("field", "otp", req.OTP, maxOTPBytes); err != nil {
		WriteError(w, r, err)
		return
	}
	if err := handle(r.Context(), domain.NewSecret(req.OTP)); err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, twoFactorStatus{TOTPEnabled: enabled})
}

type userResponse struct {
	ID          string `json:"id"`
	Email       string `json:"email"`
	Role        string `json:"role"`
	RiskProfile string `json:"risk_profile"`
	TOTPEnabled bool   `json:"totp_enabled"`
}

func (id Identity) me(w http.ResponseWriter, r *http.Request) {
	u, err := id.Me.Handle(r.Context())
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, userResponse{ID: u.ID, Email: u.Email, Role: string(u.Role), RiskProfile: string(u.RiskProfile), TOTPEnabled: u.TOTPEnabled})
}
