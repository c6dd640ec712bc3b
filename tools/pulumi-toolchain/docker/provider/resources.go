// Package provider holds our own ProviderInfo mapping the upstream Terraform
// docker provider onto the tokens and property names of the pulumi-docker
// Python SDK (pinned version: see Version).
package provider

import (
	"context"

	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	bridge "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"

	"github.com/terraform-providers/terraform-provider-docker/shim"
)

// Version is the pulumi-docker Python SDK version this plugin is compatible
// with. Overridden with -ldflags "-X ...provider.Version=...".
var Version = "5.2.0"

const (
	pkg = "docker"
	mod = "index"
)

func res(mod, typ string) *bridge.ResourceInfo {
	return &bridge.ResourceInfo{Tok: bridge.MakeResource(pkg, mod, typ)}
}

func ds(name string) *bridge.DataSourceInfo {
	return &bridge.DataSourceInfo{Tok: bridge.MakeDataSource(pkg, mod, name)}
}

// Provider returns the ProviderInfo. metadata is the bridge-metadata.json
// produced by tfgen (nil while running tfgen itself).
func Provider(metadata []byte) bridge.ProviderInfo {
	ctx := context.Background()
	upstreamVersion := "pulumi-" + Version
	sdkP := shimv2.NewProvider(shim.NewSDKProvider(upstreamVersion))
	p := tfbridge.MuxShimWithPF(ctx, sdkP, shim.NewFrameworkProvider(upstreamVersion))

	container := res(mod, "Container")
	container.DeleteBeforeReplace = true
	container.Fields = map[string]*bridge.SchemaInfo{
		// A list, but one command: not pluralised in pulumi-docker.
		"command": {Name: "command"},
		// Not pluralised in pulumi-docker.
		"networks_advanced": {Name: "networksAdvanced"},
	}

	remoteImage := res(mod, "RemoteImage")
	remoteImage.Fields = map[string]*bridge.SchemaInfo{
		"name": {Name: "name"},
	}

	prov := bridge.ProviderInfo{
		P:                p,
		Name:             "docker",
		Version:          Version,
		DisplayName:      "Docker",
		Publisher:        "Pulumi",
		Description:      "A Pulumi package for interacting with Docker in Pulumi programs",
		Keywords:         []string{"pulumi", "docker"},
		License:          "Apache-2.0",
		Homepage:         "https://pulumi.io",
		Repository:       "https://github.com/pulumi/pulumi-docker",
		GitHubOrg:        "kreuzwerker",
		UpstreamRepoPath: ".",
		MetadataInfo:     bridge.NewProviderMetadata(metadata),
		Config: map[string]*bridge.SchemaInfo{
			"host": {
				Default: &bridge.DefaultInfo{EnvVars: []string{"DOCKER_HOST"}},
			},
			"registry_auth": {
				Name: "registryAuth", // not plural in pulumi-docker
			},
		},
		Resources: map[string]*bridge.ResourceInfo{
			"docker_config":         res(mod, "ServiceConfig"),
			"docker_container":      container,
			"docker_image":          remoteImage,
			"docker_network":        res(mod, "Network"),
			"docker_secret":         res(mod, "Secret"),
			"docker_service":        res(mod, "Service"),
			"docker_volume":         res(mod, "Volume"),
			"docker_registry_image": res(mod, "RegistryImage"),
			"docker_plugin":         res(mod, "Plugin"),
			"docker_tag":            res(mod, "Tag"),
			"docker_buildx_builder": res(mod, "BuildxBuilder"),
		},
		DataSources: map[string]*bridge.DataSourceInfo{
			"docker_network":                  ds("getNetwork"),
			"docker_registry_image":           ds("getRegistryImage"),
			"docker_plugin":                   ds("getPlugin"),
			"docker_image":                    ds("getRemoteImage"),
			"docker_logs":                     ds("getLogs"),
			"docker_registry_image_manifests": ds("getRegistryImageManifests"),
			// Framework data sources: not in the pulumi-docker 5.2.0 Python SDK.
			"docker_containers":          ds("getContainers"),
			"docker_registry_image_tags": ds("getRegistryImageTags"),
		},
		Python: &bridge.PythonInfo{
			Requires: map[string]string{"pulumi": ">=3.0.0,<4.0.0"},
		},
	}
	prov.SetAutonaming(255, "-")
	return prov
}
