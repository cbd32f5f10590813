// Package e2e walks the operators' runbook (docs/RUNBOOK.md) end to end
// against real processes: the tradeops binary, built once, serves a fresh
// PostgreSQL database with fake Binance and a fake IBKR gateway (TLS) as its
// exchanges, and scripts/smoke_prod.sh and the tradeops CLI drive it as an
// operator does, through the key rotation and its rollback. Test files only.
package e2e
