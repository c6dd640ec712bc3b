// Command pulumi-tfgen-docker generates schema.json and bridge-metadata.json
// for our bridged docker provider (run: pulumi-tfgen-docker schema --out DIR).
package main

import (
	pftfgen "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfgen"

	"github.com/terraform-providers/terraform-provider-docker/shim/provider"
)

func main() {
	pftfgen.MainWithMuxer("docker", provider.Provider(nil))
}
