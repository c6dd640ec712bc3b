// Package shim exposes the upstream random provider (a terraform-plugin-framework provider).
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	upstream "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the upstream terraform-provider-random framework provider.
func NewProvider() provider.Provider { return upstream.New() }
