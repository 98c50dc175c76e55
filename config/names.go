package config

// Names lists every environment variable herald run reads, in registry
// order, each secret followed by its _FILE form. Tools that write
// configuration for herald (the Kubernetes manifests' tests) check against it,
// so a misspelt or retired variable fails there rather than being silently
// ignored at run time.
func Names() []string {
	var out []string
	for _, v := range registry {
		out = append(out, v.name)
		if v.secret {
			out = append(out, v.name+"_FILE")
		}
	}
	return out
}
