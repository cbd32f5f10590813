package app

import "time"

// Clock tells the time to the handlers that need it (DESIGN §1): one
// interface, so that a test sets the time once for all of them.
type Clock interface {
	Now() time.Time
}
