package main

import (
	"log/slog"

	"github.com/tradeops/tradeops/adapters/binance"
	"github.com/tradeops/tradeops/adapters/ibkr"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
	porthttp "github.com/tradeops/tradeops/ports/http"
)

// newExecution wires the execution feature (issue #9): prepare and the two
// test orders, on the exchanges cfg names. keys is the process's keyring,
// which opens the users' stored exchange credentials.
func newExecution(cfg exchangesConfig, store *eventstore.Store, keys app.Keyring, auth *porthttp.Authenticator, clock app.Clock, log *slog.Logger) (porthttp.Registrar, error) {
	client, err := binance.New(binance.Config{BaseURL: cfg.BinanceURL})
	if err != nil {
		name := "BINANCE_TESTNET_BASE_URL"
		if cfg.BinanceLive {
			name = "BINANCE_BASE_URL"
		}
		return nil, usageError("%s: %v", name, err)
	}
	bin := binance.NewExchange(client, cfg.BinanceLive)
	ib := ibkr.NewBridge(ibkr.NewSimulator())
	if cfg.IBKRBridgeURL != "" {
		gw, err := ibkr.NewGateway(ibkr.Config{BaseURL: cfg.IBKRBridgeURL, InsecureTLS: cfg.IBKRInsecureTLS, AllowLive: cfg.IBKRLive})
		if err != nil {
			return nil, usageError("IBKR_BRIDGE_BASE_URL: %v", err)
		}
		ib = ibkr.NewBridge(gw)
	}
	log.Info("exchanges", "binance_mode", bin.Mode(), "binance_base_url", cfg.BinanceURL, "ibkr_mode", ib.Mode(), "ibkr_live_enabled", cfg.IBKRLive)
	executions := postgres.NewExecutions(store)
	idem := postgres.NewIdempotencyKeys(store.Pool())
	creds := app.NewOpenExchangeCredentialsHandler(postgres.NewExchangeSecrets(store), keys)
	return porthttp.ExecutionRoutes(porthttp.Execution{
		Prepare:     app.NewPrepareExecutionHandler(executions, idem, bin, ib, clock),
		BinanceTest: app.NewBinanceTestOrderHandler(executions, idem, bin, creds, clock),
		IBKRTest:    app.NewIBKRTestOrderHandler(executions, idem, ib, creds, clock),
	}, auth.RequireUser), nil
}
