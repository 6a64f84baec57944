package launcher

import (
	"flag"
	"fmt"
	"io"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/tenant"
)

// runSign prints the EIP-191 personal_sign signature of a message, as ethers'
// wallet.signMessage makes it: what add-client-key and authenticate take for a nonce.
func runSign(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", "", "private key, hex (as keygen prints it)")
	fs.Usage = func() { fmt.Fprintln(stderr, "usage: circlegate sign --key PRIVATE_HEX MESSAGE") }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *key == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	priv, err := client.ParsePrivateKey(*key)
	if err != nil {
		fmt.Fprintf(stderr, "circlegate: sign: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, tenant.SignPersonal(priv, []byte(fs.Arg(0))))
	return 0
}
