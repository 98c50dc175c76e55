// Command templates-configmap writes a template tree (laid out like
// herald's templates/) as a Kubernetes ConfigMap and the Deployment patch
// that mounts it, for deploy/components/templates:
//
//	cd deploy && go run ./cmd/templates-configmap [-src ../templates] [-out components/templates]
//
// A ConfigMap holds flat keys and the tree has folders, so each file is
// stored under its path with "/" spelled "__", and the volume's items put
// every key back at its path. Run it after every template change (after
// `herald templates lint`); the deploy tests fail while the component and
// ../templates differ.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/gymhq/herald/deploy/templatecm"
)

func main() {
	src := flag.String("src", "../templates", "template tree to package")
	out := flag.String("out", "components/templates", "component folder to write templates-configmap.yaml and mount.yaml into")
	flag.Parse()
	files, err := templatecm.Generate(os.DirFS(*src))
	if err != nil {
		fmt.Fprintf(os.Stderr, "templates-configmap: %s: %v\n", *src, err)
		os.Exit(1)
	}
	for name, b := range files {
		if err := os.WriteFile(*out+"/"+name, b, 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "templates-configmap: %v\n", err)
			os.Exit(1)
		}
	}
}
