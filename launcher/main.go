package launcher

import (
	"context"
	"fmt"
	"io"
)

// Version is the circlegate version, set at build time with
// -ldflags "-X github.com/circlegate/circlegate/launcher.Version=...".
var Version = "0.1.0-dev"

const usage = `circlegate: a multi-tenant gateway for WASM applications

usage:
  circlegate serve   [-k TENANT_PK ...] [--config FILE] [--listen ADDR] [--data DIR]
                     [--tls --cert FILE --key FILE] [--demo] [--check-config]
                     [--root-key PK ...] [--dev]   operators of the admin API
                     [--redis URL [--workers N]]   a fleet node; --workers 0 only accepts
  circlegate worker  --redis URL [--concurrency N] [--config FILE] [--metrics ADDR]
                     run a fleet's job workers, no gateway
  circlegate keygen  print a new secp256k1 key pair as JSON
  circlegate sign    --key PRIVATE_HEX MESSAGE   print the EIP-191 signature of MESSAGE
                     (sign a nonce of the admin API's request-challenge)
  circlegate call    --url ws://HOST/TENANT_PK [--key PRIVATE_HEX] [--b64 NAME=FILE] METHOD [JSON_PARAMS | @FILE]
  circlegate subscribe --url ws://HOST/TENANT_PK --key PRIVATE_HEX [--since ID:SEQ ...] CONTEXT_ID...
                     print the contexts' events as JSON lines, resuming across reconnects
  circlegate verify  [--data DIR]   check every context's hash chain and history (gateway stopped)
  circlegate verify  --redis URL [--prefix P]   the same for a fleet, while it runs
  circlegate version

Run 'circlegate COMMAND -h' for the flags of a command.
`

// Main runs the circlegate command line with args (without the program name) and
// returns the process exit code. ctx ending (SIGINT, SIGTERM) stops a running server.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "worker":
		return runWorker(ctx, rest, stdout, stderr)
	case "keygen":
		return runKeygen(rest, stdout, stderr)
	case "sign":
		return runSign(rest, stdout, stderr)
	case "call":
		return runCall(ctx, rest, stdout, stderr)
	case "subscribe":
		return runSubscribe(ctx, rest, stdout, stderr)
	case "verify":
		return runVerify(ctx, rest, stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "circlegate %s\n", Version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "circlegate: unknown command %q\n\n%s", cmd, usage)
	return 2
}
