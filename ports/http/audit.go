package http

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
)

// AuditQueries are the audit use cases behind the routes.
type AuditQueries struct {
	Mine *app.ListMyAuditHandler
	All  *app.ListAuditHandler
}

// AuditRoutes serves the audit log: GET /ops/audit/me, the events the caller
// caused or that are about the caller's account, and GET /ops/audit, every
// user's, for admins. Both answer newest first, a page at a time, with an
// opaque next_cursor (null on the last page).
func AuditRoutes(q AuditQueries, requireUser, requireAdmin mux.MiddlewareFunc) Registrar {
	return func(r *mux.Router) {
		r.Handle("/ops/audit/me", requireUser(listMyAudit(q.Mine))).Methods(http.MethodGet)
		r.Handle("/ops/audit", requireAdmin(listAudit(q.All))).Methods(http.MethodGet)
	}
}

func listMyAudit(h *app.ListMyAuditHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		limit, err := auditLimit(v)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		since, err := auditSince(v)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		page, err := h.Handle(r.Context(), app.ListMyAudit{Limit: limit, Before: v.Get("before"), Type: v.Get("type"), Since: since})
		if err != nil {
			WriteError(w, r, err)
			return
		}
		WriteJSON(w, http.StatusOK, auditPageJSON(page))
	})
}

func listAudit(h *app.ListAuditHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		limit, err := auditLimit(v)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		since, err := auditSince(v)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		page, err := h.Handle(r.Context(), app.ListAudit{User: v.Get("user"), Type: v.Get("type"), Since: since,
			Before: v.Get("before"), Limit: limit})
		if err != nil {
			WriteError(w, r, err)
			return
		}
		WriteJSON(w, http.StatusOK, auditPageJSON(page))
	})
}

var errInvalidSince = domain.Errorf(domain.KindInvalid, "invalid_since", "since must be an RFC 3339 time such as 2026-11-27T00:00:00Z")

// auditSince reads ?since= (an RFC 3339 time; the zero time when absent).
func auditSince(v url.Values) (time.Time, error) {
	s := v.Get("since")
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errInvalidSince
	}
	return t, nil
}

// auditLimit reads ?limit=, defaulting when absent; the app checks the range.
func auditLimit(v url.Values) (int, error) {
	s := v.Get("limit")
	if s == "" {
		return app.DefaultAuditLimit, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, app.ErrInvalidAuditLimit
	}
	return n, nil
}

type auditActor struct {
	ID    string `json:"id"`
	Email string `json:"email,omitempty"`
}

type auditEvent struct {
	ID     string      `json:"id"`
	Type   string      `json:"type"`
	At     time.Time   `json:"at"`
	Stream string      `json:"stream"`
	Actor  *auditActor `json:"actor"` // null for events no user caused
	// Subject is the id of the user the event is about, when it is about one.
	Subject string          `json:"subject,omitempty"`
	Data    json.RawMessage `json:"data"`
}

type auditPage struct {
	Events     []auditEvent `json:"events"`
	NextCursor *string      `json:"next_cursor"`
}

func auditPageJSON(p app.AuditPage) auditPage {
	out := auditPage{Events: make([]auditEvent, len(p.Entries))}
	for i, e := range p.Entries {
		out.Events[i] = auditEvent{ID: e.ID, Type: e.Type, At: e.At, Stream: e.Stream, Subject: e.SubjectID, Data: e.Data}
		if e.ActorID != "" || e.ActorEmail != "" {
			out.Events[i].Actor = &auditActor{ID: e.ActorID, Email: e.ActorEmail}
		}
	}
	if p.Next != nil {
		s := p.Next.String()
		out.NextCursor = &s
	}
	return out
}
