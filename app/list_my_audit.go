package app

import (
	"context"
	"time"
)

// ListMyAudit asks for the caller's own audit trail, newest first.
type ListMyAudit struct {
	Limit  int       // 1..MaxAuditLimit
	Before string    // a cursor from a previous page; empty for the newest
	Type   string    // only this event type; empty for all
	Since  time.Time // recorded at or after; zero for no bound
}

// ListMyAuditHandler lists the events about the calling user's account:
// those the user caused and those that happened to the account (a failed
// login against it, an admin's change to it), and only those: the user
// filter comes from the authenticated caller, never from the request.
type ListMyAuditHandler struct{ log AuditLog }

func NewListMyAuditHandler(log AuditLog) *ListMyAuditHandler { return &ListMyAuditHandler{log: log} }

func (h *ListMyAuditHandler) Handle(ctx context.Context, q ListMyAudit) (AuditPage, error) {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return AuditPage{}, errUnauthenticated
	}
	aq, err := pageQuery(q.Limit, q.Before, q.Type)
	if err != nil {
		return AuditPage{}, err
	}
	aq.UserID, aq.Since = c.UserID, q.Since
	return listPage(ctx, h.log, aq)
}
