package http

import (
	"context"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
)

// ExchangeSecrets holds the use cases behind the exchange secrets routes.
type ExchangeSecrets struct {
	Configure *app.ConfigureExchangeSecretHandler
	Delete    *app.DeleteExchangeSecretHandler
	List      *app.ListExchangeSecretsHandler
	Reencrypt *app.ReencryptSecretsHandler
}

// ExchangeSecretsRoutes registers the caller's exchange credentials —
// GET /users/exchange-secrets, PUT and DELETE /users/exchange-secrets/{exchange}
// — and the admins' POST /ops/security/reencrypt-exchange-secrets (DESIGN §5).
func ExchangeSecretsRoutes(s ExchangeSecrets, requireUser, requireAdmin mux.MiddlewareFunc) Registrar {
	return func(r *mux.Router) {
		r.Handle("/users/exchange-secrets", requireUser(http.HandlerFunc(s.list))).Methods(http.MethodGet)
		r.Handle("/users/exchange-secrets/{exchange}", requireUser(http.HandlerFunc(s.put))).Methods(http.MethodPut)
		r.Handle("/users/exchange-secrets/{exchange}", requireUser(http.HandlerFunc(s.delete))).Methods(http.MethodDelete)
		r.Handle("/ops/security/reencrypt-exchange-secrets", requireAdmin(http.HandlerFunc(s.reencrypt))).Methods(http.MethodPost)
	}
}

// secretStatus is one entry of the status list; a missing secret has only
// exchange and status.
type secretStatus struct {
	Exchange   string     `json:"exchange"`
	Status     string     `json:"status"`
	APIKeyHint string     `json:"api_key_hint,omitempty"`
	KeyID      string     `json:"key_id,omitempty"`
	UpdatedAt  *time.Time `json:"updated_at,omitempty"`
}

func secretStatusJSON(s app.ExchangeSecretStatus) secretStatus {
	if !s.Configured {
		return secretStatus{Exchange: string(s.Exchange), Status: "missing"}
	}
	at := s.UpdatedAt.UTC()
	return secretStatus{Exchange: string(s.Exchange), Status: "configured", APIKeyHint: s.APIKeyHint, KeyID: s.KeyID, UpdatedAt: &at}
}

func (s ExchangeSecrets) list(w http.ResponseWriter, r *http.Request) {
	entries, err := s.List.Handle(r.Context())
	if err != nil {
		WriteError(w, r, err)
		return
	}
	out := struct {
		Secrets []secretStatus `json:"secrets"`
	}{Secrets: make([]secretStatus, len(entries))}
	for i, e := range entries {
		out.Secrets[i] = secretStatusJSON(e)
	}
	WriteJSON(w, http.StatusOK, out)
}

// exchangeSecretRequest holds every field any exchange takes; which ones
// an exchange requires or refuses is the domain's decision.
type exchangeSecretRequest struct {
	APIKey    *string `json:"api_key"`
	APISecret *string `json:"api_secret"`
	AccountID *string `json:"account_id"`
}

func (s ExchangeSecrets) put(w http.ResponseWriter, r *http.Request) {
	var req exchangeSecretRequest
	if !DecodeJSON(w, r, &req) {
		return
	}
	fields := map[string]domain.Secret{}
	for name, v := range map[string]*string{domain.FieldAPIKey: req.APIKey, domain.FieldAPISecret: req.APISecret, domain.FieldAccountID: req.AccountID} {
		if v != nil {
			fields[name] = domain.NewSecret(*v)
		}
	}
	st, err := s.Configure.Handle(r.Context(), app.ConfigureExchangeSecret{Exchange: mux.Vars(r)["exchange"], Fields: fields})
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, secretStatusJSON(st))
}

func (s ExchangeSecrets) delete(w http.ResponseWriter, r *http.Request) {
	if err := s.Delete.Handle(r.Context(), mux.Vars(r)["exchange"]); err != nil {
		WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// reencryptRequest is the runbook's body. The keys become domain.Secret at
// once: request bodies are never logged, and error messages name fields,
// never values.
type reencryptRequest struct {
	OldKey *string `json:"old_key"`
	NewKey *string `json:"new_key"`
	DryRun *bool   `json:"dry_run"`
}

type sealedFailure struct {
	Owner   string `json:"owner"`
	Purpose string `json:"purpose"`
	Field   string `json:"field"`
	Error   string `json:"error"`
}

type reencryptResponse struct {
	DryRun         bool            `json:"dry_run"`
	Scanned        int             `json:"scanned"`
	Updated        int             `json:"updated"`
	AlreadyCurrent int             `json:"already_current"`
	Failed         []sealedFailure `json:"failed"`
	FailedCount    int             `json:"failed_count"`
	OldKeyID       string          `json:"old_key_id"`
	NewKeyID       string          `json:"new_key_id"`
	ServerKeyID    string          `json:"server_key_id"`
}

// ReencryptResponse renders a reencrypt result as the API (and the CLI)
// shows it.
func ReencryptResponse(res app.ReencryptResult) any {
	out := reencryptResponse{DryRun: res.DryRun, Scanned: res.Scanned, Updated: res.Updated, AlreadyCurrent: res.AlreadyCurrent,
		Failed: make([]sealedFailure, len(res.Failed)), FailedCount: res.FailedCount,
		OldKeyID: res.OldKeyID, NewKeyID: res.NewKeyID, ServerKeyID: res.ServerKeyID}
	for i, f := range res.Failed {
		out.Failed[i] = sealedFailure{Owner: f.Owner, Purpose: f.Purpose, Field: f.Field, Error: f.Error}
	}
	return out
}

func (s ExchangeSecrets) reencrypt(w http.ResponseWriter, r *http.Request) {
	var req reencryptRequest
	if !DecodeJSON(w, r, &req) {
		return
	}
	if req.DryRun == nil {
		writeErrorStatus(w, http.StatusBadRequest, "missing_field", `field "dry_run" is required (true to check, false to apply)`)
		return
	}
	cmd := app.ReencryptSecrets{DryRun: *req.DryRun}
	if req.OldKey != nil {
		cmd.OldKey = domain.NewSecret(*req.OldKey)
	}
	if req.NewKey != nil {
		cmd.NewKey = domain.NewSecret(*req.NewKey)
	}
	// An apply runs to the end even if the client hangs up (a curl timeout
	// must not leave it half done); the rotation lock keeps a retry out
	// until then.
	res, err := s.Reencrypt.Handle(context.WithoutCancel(r.Context()), cmd)
	if err != nil {
		WriteError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, http.StatusOK, ReencryptResponse(res))
}
