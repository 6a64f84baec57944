package launcher

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/circlegate/circlegate/client"
)

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "tenant WebSocket URL, ws://HOST/<tenant_pk>")
	key := fs.String("key", "", "private key hex to authenticate with (optional for public methods)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline for the whole call")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" || fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(stderr, "usage: circlegate call --url ws://HOST/<tenant_pk> [--key PRIVATE_HEX] METHOD ['JSON params']")
		return 2
	}
	var params any
	if fs.NArg() == 2 {
		raw := json.RawMessage(fs.Arg(1))
		if !json.Valid(raw) {
			fmt.Fprintln(stderr, "circlegate: params are not valid JSON")
			return 2
		}
		params = raw
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c, err := client.Dial(ctx, *url)
	if err != nil {
		fmt.Fprintf(stderr, "circlegate: %v\n", err)
		return 1
	}
	defer c.Close()
	if *key != "" {
		priv, err := client.ParsePrivateKey(*key)
		if err != nil {
			fmt.Fprintf(stderr, "circlegate: --key: %v\n", err)
			return 2
		}
		if _, err := c.Authenticate(ctx, priv); err != nil {
			return printCallError(stderr, "authenticate", err)
		}
	}
	var result json.RawMessage
	if err := c.Call(ctx, fs.Arg(0), params, &result); err != nil {
		return printCallError(stderr, fs.Arg(0), err)
	}
	out, _ := json.MarshalIndent(result, "", "  ")
	fmt.Fprintln(stdout, string(out))
	return 0
}

func printCallError(w io.Writer, method string, err error) int {
	var rpcErr *client.Error
	if errors.As(err, &rpcErr) {
		fmt.Fprintf(w, "%s: error %d: %s\n", method, rpcErr.Code, rpcErr.Message)
	} else {
		fmt.Fprintf(w, "%s: %v\n", method, err)
	}
	return 1
}
