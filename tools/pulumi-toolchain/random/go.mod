// Wrapper module: builds pulumi-resource-random from the upstream terraform-provider-random
// (a terraform-plugin-framework provider) bridged with pulumi-terraform-bridge/v3 (pkg/pf).
module webstack.local/toolchain/random

go 1.25.11

require (
	github.com/pulumi/pulumi-terraform-bridge/v3 v3.137.0
	github.com/terraform-providers/terraform-provider-random/shim v0.0.0
)

// Our own shim module (kept in this tree).
replace github.com/terraform-providers/terraform-provider-random/shim => ./shim

// Copied from pulumi-terraform-bridge/v3 v3.137.0's go.mod (a dependency's replace lines are ignored).
replace github.com/hashicorp/terraform-plugin-sdk/v2 => github.com/pulumi/terraform-plugin-sdk/v2 v2.0.0-20260318212141-5525259d096b
