package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/domain"
)

func TestClassifyMarksConnectionFailuresUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, refused := pgx.Connect(ctx, "postgres://u@"+addr+"/db?sslmode=disable&connect_timeout=2")
	if refused == nil {
		t.Fatal("connected to a closed port")
	}
	conflict := domain.Errorf(domain.KindConflict, "email_taken", "taken")
	for name, c := range map[string]struct {
		err  error
		want domain.Kind
	}{
		"connect refused":       {fmt.Errorf("find user: %w", refused), domain.KindUnavailable},
		"broken mid-message":    {fmt.Errorf("read: %w", io.ErrUnexpectedEOF), domain.KindUnavailable},
		"closed conn":           {fmt.Errorf("query: %w", pgconn.ErrConnClosed), domain.KindUnavailable},
		"net error":             {&net.OpError{Op: "read", Net: "tcp", Err: errors.New("connection reset by peer")}, domain.KindUnavailable},
		"acquire deadline":      {fmt.Errorf("acquire: %w", context.DeadlineExceeded), domain.KindUnavailable},
		"admin shutdown":        {&pgconn.PgError{Code: "57P01"}, domain.KindUnavailable},
		"cannot connect now":    {&pgconn.PgError{Code: "57P03"}, domain.KindUnavailable},
		"connection exception":  {&pgconn.PgError{Code: "08006"}, domain.KindUnavailable},
		"unique violation":      {&pgconn.PgError{Code: "23505"}, domain.KindInternal},
		"bad encoding":          {&pgconn.PgError{Code: "22021"}, domain.KindInternal},
		"client went away":      {fmt.Errorf("query: %w", context.Canceled), domain.KindInternal},
		"plain bug":             {errors.New("nil map"), domain.KindInternal},
		"classified stays":      {conflict, domain.KindConflict},
		"classified wraps conn": {domain.Wrap(io.ErrUnexpectedEOF, domain.KindConflict, "c", "m"), domain.KindConflict},
	} {
		got := postgres.Classify(c.err)
		if k := domain.ErrorKind(got); k != c.want {
			t.Errorf("%s: kind %s, want %s (%v)", name, k, c.want, got)
		}
		if c.want == domain.KindUnavailable {
			var e *domain.Error
			if !errors.As(got, &e) || e.Code != "unavailable" || !errors.Is(got, c.err) {
				t.Errorf("%s: %v must be code unavailable and keep its cause", name, got)
			}
		} else if got != c.err {
			t.Errorf("%s: changed to %v", name, got)
		}
	}
	if postgres.Classify(nil) != nil {
		t.Error("nil became an error")
	}
}
