// Produces tenant/testdata/ethers_vector.json: a personal_sign (EIP-191) signature made
// by ethers, the reference the Go code in package tenant is checked against.
//
// Regenerate (outside the repository, so no node_modules lands in it):
//
//	mkdir -p /tmp/ethvec && cd /tmp/ethvec && npm init -y && npm install ethers@6.17.0
//	cp <repo>/tenant/testdata/ethers_vector.mjs . && node ethers_vector.mjs > <repo>/tenant/testdata/ethers_vector.json
import { Wallet, SigningKey, hashMessage, version } from "ethers";

const privateKey = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318";
const message = "circlegate login nonce 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

const wallet = new Wallet(privateKey);
const signature = await wallet.signMessage(message);

console.log(JSON.stringify({
  library: "ethers",
  version,
  private_key: privateKey,
  address: wallet.address,
  public_key_compressed: wallet.signingKey.compressedPublicKey,
  public_key_uncompressed: SigningKey.computePublicKey(privateKey, false),
  message,
  message_hash: hashMessage(message),
  signature,
}, null, 2));
