// Command pulumi-resource-command is our own implementation of the Pulumi "command"
// provider (command:local:Command, command:remote:Command), written against the
// pulumi-command Python SDK 1.2.1 with pulumi-go-provider's infer package.
package main

import (
	"context"
	"fmt"
	"os"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/property"

	"webstack.local/toolchain/command/internal/run"
	"webstack.local/toolchain/command/local"
	"webstack.local/toolchain/command/remote"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "1.2.1"

func main() {
	prov, err := infer.NewProviderBuilder().
		WithDisplayName("Command").
		WithDescription("Run local and remote (SSH) commands as part of a Pulumi deployment.").
		WithResources(
			infer.Resource(&local.Command{}),
			infer.Resource(&remote.Command{}),
		).
		Build()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
	if err := quietWhenStdinSecret(prov).Run(context.Background(), "command", Version); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

// quietWhenStdinSecret tells the command runner (through the context) when `stdin` is a
// secret, so that the output (which may echo it) is neither streamed to the engine log nor
// quoted in error messages. infer hands Create/Update/Delete plain values, so the
// secretness is read here from the raw request.
func quietWhenStdinSecret(prov p.Provider) p.Provider {
	secret := func(ctx context.Context, m property.Map) context.Context {
		return run.WithSecretStdin(ctx, m.Get("stdin").HasSecrets())
	}
	create, update, del := prov.Create, prov.Update, prov.Delete
	prov.Create = func(ctx context.Context, req p.CreateRequest) (p.CreateResponse, error) {
		return create(secret(ctx, req.Properties), req)
	}
	prov.Update = func(ctx context.Context, req p.UpdateRequest) (p.UpdateResponse, error) {
		return update(secret(ctx, req.Inputs), req)
	}
	prov.Delete = func(ctx context.Context, req p.DeleteRequest) error {
		return del(secret(ctx, req.Properties), req)
	}
	return prov
}
