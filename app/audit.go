package app

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// This file holds what the audit queries share: the read model they
// return, the port they read it through (implemented by projections/), and
// paging.

// AuditEntry is one event of the audit log, secrets redacted.
type AuditEntry struct {
	ID         string
	Type       string
	At         time.Time
	Stream     string
	ActorID    string // empty for events no user caused
	ActorEmail string
	// SubjectID is the user the event is about (whose account it changed or
	// tried to use); empty when it is about no user.
	SubjectID string
	Data      json.RawMessage
	// Cursor is the entry's place in the log; a page continues before it.
	Cursor AuditCursor
}

// AuditCursor is a place in the audit log: the event's position in the
// stream (transaction id, offset). Clients see it as an opaque string.
type AuditCursor struct {
	TransactionID uint64
	Offset        int64
}

// cursorPrefix versions the cursor's encoding.
const cursorPrefix = "a1:"

// String encodes c for a client.
func (c AuditCursor) String() string {
	return base64.RawURLEncoding.EncodeToString(fmt.Appendf(nil, "%s%d:%d", cursorPrefix, c.TransactionID, c.Offset))
}

func parseAuditCursor(s string) (*AuditCursor, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(raw), cursorPrefix) {
		return nil, ErrInvalidAuditCursor
	}
	xid, off, ok := strings.Cut(strings.TrimPrefix(string(raw), cursorPrefix), ":")
	x, errX := strconv.ParseUint(xid, 10, 64)
	o, errO := strconv.ParseInt(off, 10, 64)
	if !ok || errX != nil || errO != nil || o < 0 {
		return nil, ErrInvalidAuditCursor
	}
	return &AuditCursor{TransactionID: x, Offset: o}, nil
}

// AuditQuery selects audit entries, newest first. Zero fields do not filter.
type AuditQuery struct {
	// UserID selects the events the user caused (actor) or that are about
	// the user (subject).
	UserID string
	Type   string
	Since  time.Time // recorded at or after
	Before *AuditCursor
	Limit  int
}

// AuditLog reads the audit log read model.
type AuditLog interface {
	ListAudit(ctx context.Context, q AuditQuery) ([]AuditEntry, error)
}

// AuditPage is one page of the audit log. Next is nil on the last page.
type AuditPage struct {
	Entries []AuditEntry
	Next    *AuditCursor
}

// Audit page sizes.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
	maxAuditTypeLen   = 200
)

// Errors of the audit queries.
var (
	ErrInvalidAuditLimit  = domain.Errorf(domain.KindInvalid, "invalid_limit", "limit must be an integer from 1 to %d", MaxAuditLimit)
	ErrInvalidAuditCursor = domain.Errorf(domain.KindInvalid, "invalid_cursor", "cursor is not one this API returned")
	errInvalidAuditType   = domain.Errorf(domain.KindInvalid, "invalid_type", "type must be an event type name of at most %d characters", maxAuditTypeLen)
	errAdminOnly          = domain.Errorf(domain.KindForbidden, "forbidden", "this query is for administrators")
)

// pageQuery validates the paging and filter fields every audit query has.
func pageQuery(limit int, before, typ string) (AuditQuery, error) {
	if limit < 1 || limit > MaxAuditLimit {
		return AuditQuery{}, ErrInvalidAuditLimit
	}
	if len(typ) > maxAuditTypeLen {
		return AuditQuery{}, errInvalidAuditType
	}
	c, err := parseAuditCursor(before)
	if err != nil {
		return AuditQuery{}, err
	}
	return AuditQuery{Type: typ, Before: c, Limit: limit}, nil
}

// listPage reads one page: one entry more than asked tells whether another
// page follows.
func listPage(ctx context.Context, log AuditLog, q AuditQuery) (AuditPage, error) {
	limit := q.Limit
	q.Limit++
	entries, err := log.ListAudit(ctx, q)
	if err != nil {
		return AuditPage{}, err
	}
	page := AuditPage{Entries: entries}
	if len(entries) > limit {
		page.Entries = entries[:limit]
		page.Next = &entries[limit-1].Cursor
	}
	return page, nil
}
