package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tradeops/tradeops/domain"
)

// errUnavailable is what a caller is told while the database cannot be
// reached; the cause stays in the wrapped error, for logs.
var errUnavailable = domain.Errorf(domain.KindUnavailable, "unavailable", "the database is unavailable; retry shortly")

// Classify marks an error that means the database cannot be reached —
// every store, repository and read model on the pool fails the same way —
// as domain.KindUnavailable; any other error is returned unchanged, and so
// is one already classified with another kind. It is the one place that
// knows the driver's connection errors: the composition root hands it to
// the ports (the HTTP port answers 503 with Retry-After).
func Classify(err error) error {
	if err == nil || !unreachable(err) {
		return err
	}
	if k := domain.ErrorKind(err); k != domain.KindInternal {
		return err
	}
	return domain.Wrap(err, errUnavailable.Kind, errUnavailable.Code, errUnavailable.Message)
}

// unreachable reports connection-level failures: no connection could be
// made, the one in use broke or timed out, or the server is shutting down
// or not accepting connections. Failures of a statement (constraint, data,
// syntax) are not.
func unreachable(err error) bool {
	var (
		connect *pgconn.ConnectError
		pgErr   *pgconn.PgError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, context.Canceled):
		return false // the caller went away; the database may be fine
	case errors.As(err, &connect):
		return true // whatever the reason: refused, reset, auth, too many connections
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-57P03: admin or crash
		// shutdown, cannot connect now (starting up, recovering).
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	case errors.As(err, &netErr), pgconn.Timeout(err):
		return true
	}
	// A connection that broke mid-message, one pgx already closed, or a wait
	// for a pool connection that ran out of time.
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, context.DeadlineExceeded)
}
