// Our own one-file module: its path lies under the upstream module path so it may import the
// upstream's internal/provider package. Wired into the wrapper module with a local replace.
module github.com/terraform-providers/terraform-provider-random/shim

go 1.25.11

require (
	github.com/hashicorp/terraform-plugin-framework v1.19.0
	github.com/terraform-providers/terraform-provider-random v1.3.2-0.20260513075824-f8d869dc98d9
)
