package app

import (
	"context"
	"strings"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// ListAudit asks for every user's audit trail (admins only), newest first.
type ListAudit struct {
	User   string // a user id or an email; empty for all users
	Type   string
	Since  time.Time
	Before string
	Limit  int
}

// UserFinder looks an account up by its normalised email (KindNotFound when
// none); UserRepository is one.
type UserFinder interface {
	FindByEmail(ctx context.Context, email string) (Account, error)
}

// ListAuditHandler lists the audit log across users, for administrators.
type ListAuditHandler struct {
	log   AuditLog
	users UserFinder
}

func NewListAuditHandler(log AuditLog, users UserFinder) *ListAuditHandler {
	return &ListAuditHandler{log: log, users: users}
}

// Handle lists the page. A user filter, by id or by email, selects the
// events the user caused or that are about the user; an email is resolved
// to the account's id, and one that names no account has no events.
func (h *ListAuditHandler) Handle(ctx context.Context, q ListAudit) (AuditPage, error) {
	c := CallerFrom(ctx)
	switch {
	case c.UserID == "":
		return AuditPage{}, errUnauthenticated
	case c.Role != domain.RoleAdmin:
		return AuditPage{}, errAdminOnly
	}
	aq, err := pageQuery(q.Limit, q.Before, q.Type)
	if err != nil {
		return AuditPage{}, err
	}
	aq.UserID, aq.Since = q.User, q.Since
	if strings.Contains(q.User, "@") {
		acct, err := h.users.FindByEmail(ctx, domain.NormalizeEmail(q.User))
		if domain.ErrorKind(err) == domain.KindNotFound {
			return AuditPage{}, nil
		}
		if err != nil {
			return AuditPage{}, err
		}
		aq.UserID = acct.ID
	}
	return listPage(ctx, h.log, aq)
}
