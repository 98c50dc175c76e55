// Package deploy holds the tests of herald's Kubernetes manifests. It is its
// own module so that the Kustomize and Kubernetes API dependencies the tests
// need stay out of the herald binary's module.
package deploy
