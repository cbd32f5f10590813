// Package smoketest tests scripts/smoke_prod.sh against a stub of the API
// (DESIGN §5 shapes): exit codes, one line per step, secrets never shown or
// put on a command line. The run against the real server is an end-to-end
// test of its own.
package smoketest
