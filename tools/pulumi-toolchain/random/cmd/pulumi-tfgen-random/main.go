// Build-time schema generator: `pulumi-tfgen-random schema --out DIR` writes schema.json and
// bridge-metadata.json.
package main

import (
	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	"webstack.local/toolchain/random/provider"
)

func main() {
	pftfgen.Main("random", provider.Provider(nil))
}
