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

// ListAuditHandler lists the audit log across users, for administrators.
type ListAuditHandler struct{ log AuditLog }

func NewListAuditHandler(log AuditLog) *ListAuditHandler { return &ListAuditHandler{log: log} }

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
	if strings.Contains(q.User, "@") {
		aq.ActorEmail = domain.NormalizeEmail(q.User)
	} else {
		aq.ActorID = q.User
	}
	aq.Since = q.Since
	return listPage(ctx, h.log, aq)
}
