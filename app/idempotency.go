package app

import (
	"context"
	"crypto/sha256"
	"strings"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// This file holds the Idempotency-Key machinery of the execution commands
// (DESIGN §4 "Retries"): a repeat of a request with the same key and body
// gets the first response back and nothing is decided or sent again.

// Response is a command's answer as its caller received it: what an
// idempotent repeat gets back, byte for byte.
type Response struct {
	Status int
	Body   []byte
	// RetryAfter, in seconds, when the answer asks the caller to wait.
	RetryAfter int
}

// Render turns a command's result, or its error, into the Response the
// port sends. The port hands it to the command so that the response stored
// for a repeat is exactly the one the first caller got.
type Render[T any] func(result T, err error) Response

// Reply is an execution command's answer.
type Reply struct {
	Response
	// Replayed: the stored answer of an earlier request with the same key.
	Replayed bool
}

// Idempotency keys live 24 h. A claim whose request died before recording
// anything (a killed process) is free again after idempotencyLease, longer
// than any command runs (executionTimeout).
const (
	idempotencyTTL   = 24 * time.Hour
	idempotencyLease = 2 * time.Minute
	maxKeyLength     = 128
)

// IdempotencyKeys reads the claims of Idempotency-Keys, per user. Keys are
// claimed by Executions.Decide, in the deciding transaction: a key is free
// when never used, claimed before ExpiredBefore, or claimed before
// AbandonedBefore by a request that never recorded its decision (a claim
// stored apart from its decision, as releases before this one did).
type IdempotencyKeys interface {
	// Lookup returns the claim that holds r.Key, if any, as a claim by r
	// would find it (SameRequest compares r.Hash).
	Lookup(ctx context.Context, r KeyRequest) (KeyClaim, bool, error)
}

// KeyRequest is one request's claim of a key.
type KeyRequest struct {
	UserID, Key string
	// Hash identifies the request: the command and its canonical input.
	Hash                           []byte
	Now                            time.Time
	ExpiredBefore, AbandonedBefore time.Time
}

// KeyClaimState is where a claimed key stands.
type KeyClaimState int

const (
	// KeyClaimed: the key is this request's now.
	KeyClaimed KeyClaimState = iota
	// KeyInFlight: an earlier request holds it and is still running.
	KeyInFlight
	// KeyDone: the earlier request finished; Response is its answer.
	KeyDone
)

// KeyClaim is the outcome of a claim.
type KeyClaim struct {
	State KeyClaimState
	// SameRequest: the request that holds the key has this one's hash.
	SameRequest bool
	// ExecutionID is set once the holder recorded its decision.
	ExecutionID string
	// ClaimedAt is when the holder claimed the key.
	ClaimedAt time.Time
	Response  Response
}

// KeyUpdate is what a command's transaction writes to the key it holds.
type KeyUpdate struct {
	UserID, Key string
	// ExecutionID records that the decision was appended: from now on the
	// claim is never taken over as abandoned.
	ExecutionID string
	// Done is the final response, stored for repeats.
	Done *Response
	// Release frees the key instead: the exchange did not take the order
	// in (rate limited, or refused before sending), so a repeat may run.
	Release bool
}

var (
	errKeyReused = domain.Errorf(domain.KindUnprocessable, "idempotency_key_reused",
		"this Idempotency-Key was used for a different request in the last 24 h; use a new key for a new request")
	errKeyInvalid = domain.Errorf(domain.KindInvalid, "invalid_idempotency_key",
		"Idempotency-Key must be 1 to 128 printable ASCII characters")
)

// checkIdempotencyKey validates a key as sent; "" means no key.
func checkIdempotencyKey(key string, sent bool) error {
	if !sent {
		return nil
	}
	if key == "" || len(key) > maxKeyLength || strings.IndexFunc(key, func(r rune) bool { return r < ' ' || r > '~' }) >= 0 {
		return errKeyInvalid
	}
	return nil
}

// requestHash identifies a request for its key: the command and the order
// in canonical form, so {"qty":0.01} and {"qty":"0.010"} are one request
// and a different order under the same key is caught.
func requestHash(command string, o domain.OrderRequest) []byte {
	h := sha256.New()
	for _, f := range []string{command, string(o.Exchange()), o.Symbol(), string(o.Side()), string(o.OrderType()), o.Qty().String(), o.LimitPrice().String()} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// claimError is the answer to a request whose key another request holds.
func claimError(c KeyClaim, now time.Time) error {
	switch {
	case !c.SameRequest:
		return errKeyReused
	case c.ExecutionID != "" && now.Sub(c.ClaimedAt) > idempotencyLease:
		// The holder recorded its decision and then never its end: it may
		// have sent the order. Running it again could send it twice.
		return domain.Errorf(domain.KindConflict, "idempotency_unfinished",
			"the first request with this Idempotency-Key (execution %s) did not finish; its events are in /ops/audit/me; use a new key to try again", c.ExecutionID)
	}
	return &domain.Error{Kind: domain.KindConflict, Code: "idempotency_in_progress",
		Message: "a request with this Idempotency-Key is still in progress; retry later", RetryAfterSeconds: 1}
}
