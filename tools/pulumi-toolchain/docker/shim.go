// Package shim exposes the upstream kreuzwerker/terraform-provider-docker
// providers (SDKv2 part and terraform-plugin-framework part) to the bridge.
//
// This module's path lies under the upstream module path, which is what makes
// importing the upstream internal/provider package legal. No upstream code is
// copied; the upstream is consumed as a Go module.
package shim

import (
	pfprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"

	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewSDKProvider returns the SDKv2 part of the upstream provider.
func NewSDKProvider(version string) *schema.Provider {
	return provider.New(version)()
}

// NewFrameworkProvider returns the terraform-plugin-framework part of the
// upstream provider (docker_containers / docker_registry_image_tags data
// sources; docker_compose is excluded by the no_compose build tag).
func NewFrameworkProvider(version string) pfprovider.Provider {
	return provider.NewFrameworkProvider(version)()
}
