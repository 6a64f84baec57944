package launcher

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/circlegate/circlegate/client"
)

func runCall(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "", "tenant WebSocket URL, ws://HOST/<tenant_pk>")
	key := fs.String("key", "", "private key hex to authenticate with (optional for public methods)")
	timeout := fs.Duration("timeout", 30*time.Second, "deadline for the whole call")
	var files stringList
	fs.Var(&files, "b64", "NAME=FILE: set param NAME to the base64 of FILE (repeatable), e.g. --b64 wasm=bin/apps/counter.wasm")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" || fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(stderr, "usage: circlegate call --url ws://HOST/<tenant_pk> [--key PRIVATE_HEX] [--b64 NAME=FILE] METHOD ['JSON params' | @FILE]")
		return 2
	}
	params, err := callParams(fs.Arg(1), files)
	if err != nil {
		fmt.Fprintf(stderr, "circlegate: %v\n", err)
		return 2
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

// callParams builds the params of a call: the JSON argument (or @FILE holding it),
// then each --b64 NAME=FILE as a base64 string param.
func callParams(arg string, files []string) (any, error) {
	if strings.HasPrefix(arg, "@") {
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, err
		}
		arg = string(b)
	}
	if len(files) == 0 {
		if arg == "" {
			return nil, nil
		}
		if !json.Valid([]byte(arg)) {
			return nil, errors.New("params are not valid JSON")
		}
		return json.RawMessage(arg), nil
	}
	obj := map[string]any{}
	if arg != "" {
		if err := json.Unmarshal([]byte(arg), &obj); err != nil {
			return nil, errors.New("with --b64, params must be a JSON object")
		}
	}
	for _, f := range files {
		name, path, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("--b64 %q: want NAME=FILE", f)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		obj[name] = base64.StdEncoding.EncodeToString(b)
	}
	return obj, nil
}
