package deploy

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/gymhq/herald/channels/email"
	"github.com/gymhq/herald/channels/push"
	"github.com/gymhq/herald/channels/sms"
	"github.com/gymhq/herald/config"
	"github.com/gymhq/herald/notification"
	"github.com/gymhq/herald/sinks/fcmfake"
	"github.com/gymhq/herald/topics"
)

// overlays are built and checked by every test; prod-secure is prod with
// the kafka-sasl-tls and redis-tls-acl components.
var overlays = []string{"dev", "prod", "prod-secure"}

// roles are the dispatcher and every registered channel (channels/all):
// each has its Deployment.
func roles() []config.Role { return append(consumerRoles(), config.RoleGateway) }

// consumerRoles are the roles that consume topics: the dispatcher and
// every channel (the gateway serves HTTP instead).
func consumerRoles() []config.Role {
	out := []config.Role{config.RoleDispatcher}
	for _, ch := range notification.Known() {
		out = append(out, config.Role(ch))
	}
	return out
}

// ScaledObject mirrors the fields of KEDA's keda.sh/v1alpha1 ScaledObject
// CRD that herald's manifests use; decoding is strict, so a field outside
// this subset (or a misspelt one) fails the test rather than being ignored.
type ScaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		ScaleTargetRef struct {
			Name       string `json:"name"`
			Kind       string `json:"kind,omitempty"`
			APIVersion string `json:"apiVersion,omitempty"`
		} `json:"scaleTargetRef"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type string `json:"type"`
			// KEDA's trigger metadata is map[string]string: a number or
			// boolean written unquoted is rejected by the API server.
			Metadata          map[string]string `json:"metadata"`
			AuthenticationRef *struct {
				Name string `json:"name"`
				Kind string `json:"kind,omitempty"`
			} `json:"authenticationRef,omitempty"`
		} `json:"triggers"`
	} `json:"spec"`
}

// TriggerAuthentication mirrors the fields of keda.sh/v1alpha1
// TriggerAuthentication that herald's manifests use.
type TriggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef,omitempty"`
		Env []struct {
			Parameter     string `json:"parameter"`
			Name          string `json:"name"`
			ContainerName string `json:"containerName,omitempty"`
		} `json:"env,omitempty"`
	} `json:"spec"`
}

// kafkaScalerKeys are the KEDA kafka scaler metadata keys herald may use.
var kafkaScalerKeys = []string{"bootstrapServers", "consumerGroup", "topic", "lagThreshold",
	"activationLagThreshold", "offsetResetPolicy", "allowIdleConsumers", "scaleToZeroOnInvalidOffset",
	"excludePersistentLag", "limitToPartitionsWithLag", "version", "sasl", "tls"}

// kedaSASL is KEDA's name for each of herald's SASL mechanisms.
var kedaSASL = map[string]string{"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256", "SCRAM-SHA-512": "scram_sha512"}

// PrometheusRule mirrors monitoring.coreos.com/v1 PrometheusRule.
type PrometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Groups []struct {
			Name     string `json:"name"`
			Interval string `json:"interval,omitempty"`
			Rules    []struct {
				Record      string            `json:"record,omitempty"`
				Alert       string            `json:"alert,omitempty"`
				Expr        string            `json:"expr"`
				For         string            `json:"for,omitempty"`
				Labels      map[string]string `json:"labels,omitempty"`
				Annotations map[string]string `json:"annotations,omitempty"`
			} `json:"rules"`
		} `json:"groups"`
	} `json:"spec"`
}

// PodMonitor mirrors monitoring.coreos.com/v1 PodMonitor.
type PodMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// fleet is one overlay's output, every object decoded into its API type.
type fleet struct {
	namespaces      []*corev1.Namespace
	serviceAccounts []*corev1.ServiceAccount
	configMaps      map[string]*corev1.ConfigMap
	deployments     map[string]*appsv1.Deployment
	pdbs            []*policyv1.PodDisruptionBudget
	netpols         []*networkingv1.NetworkPolicy
	scaledObjects   []*ScaledObject
	triggerAuths    map[string]*TriggerAuthentication
	rules           []*PrometheusRule
	podMonitors     []*PodMonitor
	services        []*corev1.Service
	hpas            []*autoscalingv2.HorizontalPodAutoscaler
}

// decodeStrict decodes JSON into v, refusing fields v does not have.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
}

// build runs Kustomize on an overlay, as `kubectl kustomize` does, and
// decodes every object strictly.
func build(t *testing.T, overlay string) *fleet {
	t.Helper()
	return buildDir(t, filepath.Join("overlays", overlay))
}

// buildDir builds the kustomization in dir.
func buildDir(t *testing.T, dir string) *fleet {
	t.Helper()
	overlay := dir
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	f := &fleet{configMaps: map[string]*corev1.ConfigMap{}, deployments: map[string]*appsv1.Deployment{},
		triggerAuths: map[string]*TriggerAuthentication{}}
	for _, r := range m.Resources() {
		b, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		gvk := r.GetApiVersion() + " " + r.GetKind()
		var obj any
		switch gvk {
		case "v1 Namespace":
			o := &corev1.Namespace{}
			f.namespaces, obj = append(f.namespaces, o), o
		case "v1 ServiceAccount":
			o := &corev1.ServiceAccount{}
			f.serviceAccounts, obj = append(f.serviceAccounts, o), o
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			f.configMaps[r.GetName()], obj = o, o
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			f.deployments[r.GetName()], obj = o, o
		case "policy/v1 PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			f.pdbs, obj = append(f.pdbs, o), o
		case "networking.k8s.io/v1 NetworkPolicy":
			o := &networkingv1.NetworkPolicy{}
			f.netpols, obj = append(f.netpols, o), o
		case "keda.sh/v1alpha1 ScaledObject":
			o := &ScaledObject{}
			f.scaledObjects, obj = append(f.scaledObjects, o), o
		case "keda.sh/v1alpha1 TriggerAuthentication":
			o := &TriggerAuthentication{}
			f.triggerAuths[r.GetName()], obj = o, o
		case "monitoring.coreos.com/v1 PrometheusRule":
			o := &PrometheusRule{}
			f.rules, obj = append(f.rules, o), o
		case "v1 Service":
			o := &corev1.Service{}
			f.services, obj = append(f.services, o), o
		case "autoscaling/v2 HorizontalPodAutoscaler":
			o := &autoscalingv2.HorizontalPodAutoscaler{}
			f.hpas, obj = append(f.hpas, o), o
		case "monitoring.coreos.com/v1 PodMonitor":
			o := &PodMonitor{}
			f.podMonitors, obj = append(f.podMonitors, o), o
		default:
			t.Errorf("%s: %s %s: a kind this test does not check; add it", overlay, gvk, r.GetName())
			continue
		}
		if err := decodeStrict(b, obj); err != nil {
			t.Errorf("%s: %s %s does not decode strictly: %v", overlay, gvk, r.GetName(), err)
		}
	}
	return f
}

// settings is the herald-config ConfigMap every Deployment reads.
func (f *fleet) settings(t *testing.T) map[string]string {
	t.Helper()
	for name, cm := range f.configMaps {
		if strings.HasPrefix(name, "herald-config") {
			return cm.Data
		}
	}
	t.Fatal("no herald-config ConfigMap")
	return nil
}

func (f *fleet) deployment(t *testing.T, role config.Role) *appsv1.Deployment {
	t.Helper()
	d := f.deployments["herald-"+string(role)]
	if d == nil {
		t.Fatalf("no Deployment herald-%s", role)
	}
	return d
}

func duration(t *testing.T, settings map[string]string, name string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(settings[name])
	if err != nil {
		t.Fatalf("%s=%q: %v", name, settings[name], err)
	}
	return d
}

func forEachOverlay(t *testing.T, fn func(t *testing.T, f *fleet)) {
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) { fn(t, build(t, o)) })
	}
}

// TestOneDeploymentPerRole: one Deployment per role from one image, each running
// its role, and nothing else.
func TestOneDeploymentPerRole(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		if len(f.deployments) != len(roles()) {
			t.Errorf("%d Deployments, want one per role (%d)", len(f.deployments), len(roles()))
		}
		image := ""
		for _, role := range roles() {
			d := f.deployment(t, role)
			spec := d.Spec.Template.Spec
			if len(spec.Containers) != 1 {
				t.Fatalf("%s: %d containers, want 1", d.Name, len(spec.Containers))
			}
			c := spec.Containers[0]
			if want := []string{"run", "--role", string(role)}; !slices.Equal(c.Args, want) || len(c.Command) != 0 {
				t.Errorf("%s: command %v args %v, want the image's entrypoint with args %v", d.Name, c.Command, c.Args, want)
			}
			if image == "" {
				image = c.Image
			} else if c.Image != image {
				t.Errorf("%s: image %s, others use %s: one image serves every role", d.Name, c.Image, image)
			}
			if !strings.Contains(c.Image, ":") || c.Image == "herald" {
				t.Errorf("%s: image %q is not set by the overlay", d.Name, c.Image)
			}
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: selector %v does not match its pods (%v)", d.Name, d.Spec.Selector, err)
			}
			if d.Spec.Template.Labels["app.kubernetes.io/component"] != string(role) {
				t.Errorf("%s: pods not labelled with their role", d.Name)
			}
		}
	})
}

// TestProbes: liveness on /healthz and readiness on /readyz, on the port
// herald actually listens on (HERALD_HTTP_ADDR).
func TestProbes(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		_, portStr, err := net.SplitHostPort(f.settings(t)["HERALD_HTTP_ADDR"])
		if err != nil {
			t.Fatalf("HERALD_HTTP_ADDR: %v", err)
		}
		port, _ := strconv.Atoi(portStr)
		for _, role := range roles() {
			d := f.deployment(t, role)
			c := d.Spec.Template.Spec.Containers[0]
			check := func(kind string, p *corev1.Probe, path string) {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("%s: no %s HTTP probe", d.Name, kind)
					return
				}
				if p.HTTPGet.Path != path {
					t.Errorf("%s: %s probe on %s, want %s", d.Name, kind, p.HTTPGet.Path, path)
				}
				if got := containerPort(c, p.HTTPGet.Port.String()); got != int32(port) {
					t.Errorf("%s: %s probe port %s is %d, herald listens on %d", d.Name, kind, p.HTTPGet.Port.String(), got, port)
				}
				if p.TimeoutSeconds < 1 || p.PeriodSeconds < 1 || p.FailureThreshold < 1 {
					t.Errorf("%s: %s probe timing unset", d.Name, kind)
				}
			}
			check("liveness", c.LivenessProbe, "/healthz")
			check("readiness", c.ReadinessProbe, "/readyz")
			// A liveness probe that gives up in less than a drain would
			// restart a pod that is busy finishing its sends.
			if lp := c.LivenessProbe; lp != nil && lp.PeriodSeconds*lp.FailureThreshold < 20 {
				t.Errorf("%s: liveness fails after %ds; too eager", d.Name, lp.PeriodSeconds*lp.FailureThreshold)
			}
		}
		for _, pm := range f.podMonitors {
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				for _, role := range roles() {
					c := f.deployment(t, role).Spec.Template.Spec.Containers[0]
					if containerPort(c, ep.Port) != int32(port) || ep.Path != "/metrics" {
						t.Errorf("PodMonitor scrapes %s%s, herald-%s serves /metrics on %d", ep.Port, ep.Path, role, port)
					}
				}
			}
		}
		if len(f.podMonitors) != 1 {
			t.Errorf("%d PodMonitors, want 1", len(f.podMonitors))
		}
	})
}

// containerPort resolves a probe or scrape port (a name or a number).
func containerPort(c corev1.Container, p string) int32 {
	if n, err := strconv.Atoi(p); err == nil {
		return int32(n)
	}
	for _, cp := range c.Ports {
		if cp.Name == p {
			return cp.ContainerPort
		}
	}
	return -1
}

// TestSecurity: non-root, read-only root filesystem, no capabilities,
// seccomp, no service account token, requests and limits.
func TestSecurity(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		for _, role := range roles() {
			d := f.deployment(t, role)
			ps := d.Spec.Template.Spec
			psc := ps.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 {
				t.Errorf("%s: pod may run as root", d.Name)
			}
			if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccomp profile is not RuntimeDefault", d.Name)
			}
			if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
				t.Errorf("%s: mounts a service account token it never uses", d.Name)
			}
			c := ps.Containers[0]
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Errorf("%s: no container securityContext", d.Name)
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Errorf("%s: root filesystem is writable", d.Name)
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Errorf("%s: privilege escalation allowed", d.Name)
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
				t.Errorf("%s: capabilities %v, want drop ALL", d.Name, sc.Capabilities)
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := c.Resources.Requests[r]
				lim, hasLim := c.Resources.Limits[r]
				if !hasReq || !hasLim {
					t.Errorf("%s: %s request or limit missing", d.Name, r)
				} else if req.Cmp(lim) > 0 {
					t.Errorf("%s: %s request %s above limit %s", d.Name, r, req.String(), lim.String())
				}
			}
		}
		for _, ns := range f.namespaces {
			if ns.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
				t.Errorf("namespace %s does not enforce the restricted pod security standard", ns.Name)
			}
		}
	})
}

// TestGracePeriod: Kubernetes must not SIGKILL a pod that is still within
// herald's drain deadline, and that deadline must outlast a send.
func TestGracePeriod(t *testing.T) {
	// The final commit, LeaveGroup and process exit after the drain
	// deadline; a few seconds, stated here rather than guessed per file.
	const margin = 5 * time.Second
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		s := f.settings(t)
		send, shutdown, commit := duration(t, s, "HERALD_SEND_TIMEOUT"), duration(t, s, "HERALD_SHUTDOWN_TIMEOUT"), duration(t, s, "HERALD_COMMIT_INTERVAL")
		if shutdown <= send {
			t.Errorf("HERALD_SHUTDOWN_TIMEOUT %v must exceed HERALD_SEND_TIMEOUT %v", shutdown, send)
		}
		for _, role := range roles() {
			d := f.deployment(t, role)
			g := d.Spec.Template.Spec.TerminationGracePeriodSeconds
			if g == nil {
				t.Errorf("%s: terminationGracePeriodSeconds unset (Kubernetes' 30s default is not above the drain)", d.Name)
				continue
			}
			if got, want := time.Duration(*g)*time.Second, shutdown+commit+margin; got < want {
				t.Errorf("%s: terminationGracePeriodSeconds %v, want at least %v (shutdown %v + commit %v + %v)", d.Name, got, want, shutdown, commit, margin)
			}
		}
	})
}

// TestConfiguration: every variable the manifests set is one herald reads;
// every _FILE names a file in a mounted Secret; and each role's
// configuration, as the pod would see it, passes herald's own validation.
func TestConfiguration(t *testing.T) {
	known := config.Names()
	secretValues := operatorSecrets(t)
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		s := f.settings(t)
		for k := range s {
			if !slices.Contains(known, k) {
				t.Errorf("ConfigMap sets %s, which herald does not read", k)
			}
			if strings.HasSuffix(k, "_FILE") || k == "HERALD_FCM_CREDENTIALS_FILE" {
				t.Errorf("ConfigMap sets %s: file paths belong with the mounts, in the Deployment", k)
			}
		}
		for _, role := range roles() {
			d := f.deployment(t, role)
			ps := d.Spec.Template.Spec
			c := ps.Containers[0]
			cfg, err := podConfig(t, f, d, secretValues)
			if err != nil {
				t.Errorf("%s: herald would not start with this configuration: %v", d.Name, err)
			} else if err := channelConfig(cfg); err != nil {
				t.Errorf("%s: the %s channel would refuse this configuration: %v", d.Name, role, err)
			}
			// Secrets are mounted read-only.
			for _, m := range c.VolumeMounts {
				for _, v := range ps.Volumes {
					if v.Name == m.Name && v.Secret != nil && !m.ReadOnly {
						t.Errorf("%s: Secret %s mounted writable at %s", d.Name, v.Secret.SecretName, m.MountPath)
					}
				}
			}
			// Secrets only where used: a role mounts no Secret it does not read.
			for _, v := range ps.Volumes {
				if v.Secret == nil {
					continue
				}
				used := false
				for _, e := range c.Env {
					if s, _ := mountedSecret(ps, c, e.Value); strings.HasSuffix(e.Name, "_FILE") && s == v.Secret.SecretName {
						used = true
					}
				}
				if !used {
					t.Errorf("%s: mounts Secret %s but no variable reads it", d.Name, v.Secret.SecretName)
				}
			}
		}
	})
}

// operatorSecrets is what the operator puts in each Secret key
// (docs/operations.md), by Secret/key.
func operatorSecrets(t *testing.T) map[string]string {
	t.Helper()
	sa, err := fcmfake.NewServiceAccount()
	if err != nil {
		t.Fatal(err)
	}
	saJSON, err := sa.JSON("https://oauth2.googleapis.com/token")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"herald-redis/url":                "redis://:pw@redis-master.redis.svc:6379/0",
		"herald-smtp/password":            "smtp-password",
		"herald-twilio/auth-token":        "0123456789abcdef0123456789abcdef",
		"herald-fcm/service-account.json": string(saJSON),
		"herald-gateway/jwt-secret":       "a-gateway-signing-key-of-32-bytes-or-more",
		// components/kafka-sasl-tls
		"herald-kafka/password": "kafka-password",
		"herald-kafka/ca.crt":   testCA(t, "kafka-ca"),
		// components/redis-tls-acl: the credentials leave the URL
		"herald-redis/password": "redis-password",
		"herald-redis/ca.crt":   testCA(t, "redis-ca"),
		// What url holds instead when HERALD_REDIS_PASSWORD_FILE is set.
		"herald-redis/url+acl": "rediss://redis-master.redis.svc:6379/0",
		// components/unsubscribe: as `head -c 32 /dev/urandom | base64` writes it
		"herald-unsubscribe/secret": "q3Vd0mB9yXh2cJ7tWz1sK8pLr4eN6aF5gH0iU2oY9Tc=",
	}
}

// testCA returns a self-signed CA certificate in PEM, as a ca.crt key holds.
func testCA(t *testing.T, name string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// podConfig loads the configuration herald would see in Deployment d's
// container: its envFrom ConfigMaps, its env, and each _FILE variable's
// Secret key (from secretValues) written to a local copy. It reports (as
// test errors) variables herald does not read, secrets passed as
// valueFrom, and _FILE paths outside a mounted Secret or naming a key
// docs/operations.md does not create.
func podConfig(t *testing.T, f *fleet, d *appsv1.Deployment, secretValues map[string]string) (*config.Config, error) {
	t.Helper()
	known := config.Names()
	ps := d.Spec.Template.Spec
	c := ps.Containers[0]
	// With redis-tls-acl the password is its own key, so the URL carries none.
	aclRedis := false
	for _, e := range c.Env {
		aclRedis = aclRedis || e.Name == "HERALD_REDIS_PASSWORD_FILE"
	}
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil || f.configMaps[ef.ConfigMapRef.Name] == nil {
			t.Errorf("%s: envFrom %+v is not a ConfigMap in the build", d.Name, ef)
			continue
		}
		for k, v := range f.configMaps[ef.ConfigMapRef.Name].Data {
			env[k] = v
		}
	}
	dir := t.TempDir()
	for _, e := range c.Env {
		if !strings.HasPrefix(e.Name, "HERALD_") {
			continue // the Go runtime's GOMEMLIMIT
		}
		if !slices.Contains(known, e.Name) {
			t.Errorf("%s: env %s is not a variable herald reads", d.Name, e.Name)
			continue
		}
		if e.ValueFrom != nil {
			t.Errorf("%s: %s comes from valueFrom; secrets are files (_FILE)", d.Name, e.Name)
			continue
		}
		if !strings.HasSuffix(e.Name, "_FILE") {
			env[e.Name] = e.Value
			continue
		}
		secret, key := mountedSecret(ps, c, e.Value)
		if secret == "" {
			t.Errorf("%s: %s=%s is not in a mounted Secret volume", d.Name, e.Name, e.Value)
			continue
		}
		val, ok := secretValues[secret+"/"+key]
		if acl, has := secretValues[secret+"/"+key+"+acl"]; has && aclRedis {
			val = acl
		}
		if !ok {
			t.Errorf("%s: %s reads key %q of Secret %s, which docs/operations.md does not create", d.Name, e.Name, key, secret)
			continue
		}
		// The pod reads the mount; the test reads a copy.
		local := filepath.Join(dir, secret+"-"+key)
		if err := os.WriteFile(local, []byte(val+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		env[e.Name] = local
	}
	return config.Load(c.Args[1:], func(k string) string { return env[k] })
}

// channelConfig checks cfg as the channel it configures does at start. The
// mapping mirrors buildFleet in cmd/herald.
func channelConfig(cfg *config.Config) error {
	switch cfg.Role {
	case config.RoleEmail:
		c := email.Config{Addr: cfg.SMTPAddr, Username: cfg.SMTPUsername, Password: cfg.SMTPPassword,
			TLS: email.TLSMode(cfg.SMTPTLS), From: cfg.EmailFrom, PoolSize: cfg.SMTPPoolSize, Timeout: cfg.SendTimeout}
		return c.Validate()
	case config.RoleSMS:
		c := sms.Config{AccountSID: cfg.TwilioAccountSID, AuthToken: cfg.TwilioAuthToken, From: cfg.TwilioFrom,
			MessagingServiceSID: cfg.TwilioMessagingServiceSID, APIURL: cfg.TwilioAPIURL,
			ValidityPeriod: cfg.SMSValidityPeriod, Timeout: cfg.SendTimeout}
		return c.Validate()
	case config.RolePush:
		c := push.Config{ProjectID: cfg.FCMProjectID, CredentialsFile: cfg.FCMCredentialsFile,
			Endpoint: cfg.FCMEndpoint, Timeout: cfg.SendTimeout}
		return c.Validate()
	}
	return nil
}

// mountedSecret returns the Secret and key that file p of container c
// comes from, or "" if p is not inside a Secret volume mount.
func mountedSecret(ps corev1.PodSpec, c corev1.Container, p string) (secret, key string) {
	for _, m := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(path.Clean(p), path.Clean(m.MountPath)+"/")
		if !ok || m.SubPath != "" {
			continue
		}
		for _, v := range ps.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			if len(v.Secret.Items) == 0 {
				if !strings.Contains(rel, "/") {
					return v.Secret.SecretName, rel
				}
				continue
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					return v.Secret.SecretName, it.Key
				}
			}
		}
	}
	return "", ""
}

// TestScaledObjects: one KEDA ScaledObject per consumer group, on the
// group's main topic, scaling its own Deployment, with the brokers herald
// uses and never more replicas than partitions.
func TestScaledObjects(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		s := f.settings(t)
		partitions, err := strconv.Atoi(s["HERALD_TOPIC_PARTITIONS"])
		if err != nil {
			t.Fatal(err)
		}
		type want struct {
			role  config.Role
			topic string
		}
		groups := map[string]want{topics.GroupDispatch: {config.RoleDispatcher, s["HERALD_EVENTS_TOPIC"]}}
		for _, ch := range notification.Known() {
			groups[topics.Group(ch)] = want{config.Role(ch), topics.Channel(ch)}
		}
		seen := map[string]bool{}
		for _, so := range f.scaledObjects {
			if len(so.Spec.Triggers) != 1 {
				t.Errorf("%s: %d triggers, want 1", so.Name, len(so.Spec.Triggers))
				continue
			}
			tr := so.Spec.Triggers[0]
			group := tr.Metadata["consumerGroup"]
			w, ok := groups[group]
			if tr.Type != "kafka" || !ok {
				t.Errorf("%s: %s trigger on group %q, not a herald consumer group", so.Name, tr.Type, group)
				continue
			}
			if seen[group] {
				t.Errorf("group %s has two ScaledObjects", group)
			}
			seen[group] = true
			for k := range tr.Metadata {
				if !slices.Contains(kafkaScalerKeys, k) {
					t.Errorf("%s: kafka scaler has no metadata key %q", so.Name, k)
				}
			}
			if tr.Metadata["topic"] != w.topic {
				t.Errorf("%s: lag of topic %q, group %s consumes %s", so.Name, tr.Metadata["topic"], group, w.topic)
			}
			if tr.Metadata["bootstrapServers"] != s["HERALD_KAFKA_BROKERS"] {
				t.Errorf("%s: bootstrapServers %q, herald uses %q", so.Name, tr.Metadata["bootstrapServers"], s["HERALD_KAFKA_BROKERS"])
			}
			checkScalerAuth(t, f, so, s)
			if n, err := strconv.Atoi(tr.Metadata["lagThreshold"]); err != nil || n < 1 {
				t.Errorf("%s: lagThreshold %q", so.Name, tr.Metadata["lagThreshold"])
			}
			target := so.Spec.ScaleTargetRef.Name
			d := f.deployments[target]
			if d == nil || target != "herald-"+string(w.role) {
				t.Errorf("%s scales %q, want Deployment herald-%s", so.Name, target, w.role)
			}
			if d != nil && d.Spec.Replicas != nil {
				t.Errorf("%s sets replicas: every apply would reset the count KEDA chose", d.Name)
			}
			lo, hi := so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount
			switch {
			case lo == nil || hi == nil:
				t.Errorf("%s: min/max replicas unset", so.Name)
			case *lo < 1:
				t.Errorf("%s: minReplicaCount %d: scaling a group to zero leaves lag unwatched by herald and the DLQ unread", so.Name, *lo)
			case *hi < *lo:
				t.Errorf("%s: max %d below min %d", so.Name, *hi, *lo)
			case w.role != config.RoleDispatcher && int(*hi) > partitions:
				t.Errorf("%s: maxReplicaCount %d above the %d partitions of %s: pods beyond that idle", so.Name, *hi, partitions, w.topic)
			}
		}
		for g := range groups {
			if !seen[g] {
				t.Errorf("no ScaledObject for consumer group %s", g)
			}
		}
	})
}

// checkScalerAuth: KEDA reaches the brokers as herald does. With SASL or
// TLS on in herald-config, the trigger names the same mechanism and TLS
// switch and a TriggerAuthentication whose password and CA are the Secret
// keys the pods read (herald-kafka) and whose user name is the pods'
// HERALD_KAFKA_SASL_USERNAME; with both off, none of that is set.
func checkScalerAuth(t *testing.T, f *fleet, so *ScaledObject, s map[string]string) {
	t.Helper()
	tr := so.Spec.Triggers[0]
	mech, tlsOn := s["HERALD_KAFKA_SASL_MECHANISM"], s["HERALD_KAFKA_TLS"] == "on"
	if mech == "none" {
		mech = ""
	}
	if tr.Metadata["sasl"] != kedaSASL[mech] {
		t.Errorf("%s: KEDA sasl %q, herald logs in with %q (KEDA's name %q)", so.Name, tr.Metadata["sasl"], mech, kedaSASL[mech])
	}
	if wantTLS := map[bool]string{true: "enable"}[tlsOn]; tr.Metadata["tls"] != wantTLS {
		t.Errorf("%s: KEDA tls %q, herald HERALD_KAFKA_TLS=%q", so.Name, tr.Metadata["tls"], s["HERALD_KAFKA_TLS"])
	}
	if mech == "" && !tlsOn {
		if tr.AuthenticationRef != nil {
			t.Errorf("%s: authenticationRef for brokers herald reaches without SASL or TLS", so.Name)
		}
		return
	}
	if tr.AuthenticationRef == nil || f.triggerAuths[tr.AuthenticationRef.Name] == nil || tr.AuthenticationRef.Kind != "" {
		t.Errorf("%s: SASL/TLS on but authenticationRef %+v is not a TriggerAuthentication in the build", so.Name, tr.AuthenticationRef)
		return
	}
	ta := f.triggerAuths[tr.AuthenticationRef.Name]
	d := f.deployments[so.Spec.ScaleTargetRef.Name]
	if d == nil {
		return // reported by TestScaledObjects
	}
	ps := d.Spec.Template.Spec
	c := ps.Containers[0]
	// What herald reads, by KEDA parameter.
	want := map[string]string{}
	for _, e := range c.Env {
		secret, key := mountedSecret(ps, c, e.Value)
		switch e.Name {
		case "HERALD_KAFKA_SASL_PASSWORD_FILE":
			want["password"] = secret + "/" + key
		case "HERALD_KAFKA_TLS_CA_FILE":
			want["ca"] = secret + "/" + key
		}
	}
	got := map[string]string{}
	for _, r := range ta.Spec.SecretTargetRef {
		got[r.Parameter] = r.Name + "/" + r.Key
	}
	for _, e := range ta.Spec.Env {
		if e.ContainerName != c.Name || e.Name != "HERALD_KAFKA_SASL_USERNAME" {
			t.Errorf("%s: KEDA %s from env %s of container %q, want HERALD_KAFKA_SASL_USERNAME of %q", ta.Name, e.Parameter, e.Name, e.ContainerName, c.Name)
		}
		got[e.Parameter] = "env"
	}
	if mech != "" {
		want["username"] = "env"
	} else {
		delete(want, "password")
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: KEDA %s from %q, herald reads %q", ta.Name, p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: KEDA parameter %s, which herald has no counterpart for", ta.Name, p)
		}
	}
}

// TestDisruptionBudgets: one PodDisruptionBudget per role selecting exactly
// that role's pods.
func TestDisruptionBudgets(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		for _, role := range roles() {
			n := 0
			for _, pdb := range f.pdbs {
				sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
				if err != nil {
					t.Fatal(err)
				}
				for _, other := range roles() {
					match := sel.Matches(labels.Set(f.deployment(t, other).Spec.Template.Labels))
					if match && other == role {
						n++
					} else if match && (pdb.Name == "herald-"+string(role)) {
						t.Errorf("PDB %s also selects %s pods", pdb.Name, other)
					}
				}
				if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
					t.Errorf("PDB %s sets neither maxUnavailable nor minAvailable", pdb.Name)
				}
			}
			if n != 1 {
				t.Errorf("%d PodDisruptionBudgets select herald-%s pods, want 1", n, role)
			}
		}
	})
}

// TestNetworkPolicy: every pod is isolated both ways; DNS, Kafka and (for
// the channel roles) Redis and the providers are reachable; only the
// metrics port is open, from the monitoring namespace.
func TestNetworkPolicy(t *testing.T) {
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		_, kafkaPort, err := net.SplitHostPort(strings.Split(f.settings(t)["HERALD_KAFKA_BROKERS"], ",")[0])
		if err != nil {
			t.Fatal(err)
		}
		_, smtpPort, _ := net.SplitHostPort(f.settings(t)["HERALD_SMTP_ADDR"])
		needs := map[config.Role][]string{
			config.RoleDispatcher: {"53", kafkaPort},
			config.RoleEmail:      {"53", kafkaPort, "6379", smtpPort},
			config.RoleSMS:        {"53", kafkaPort, "6379", "443"},
			config.RolePush:       {"53", kafkaPort, "6379", "443"},
		}
		for _, role := range roles() {
			d := f.deployment(t, role)
			podLabels := labels.Set(d.Spec.Template.Labels)
			var ingress, egress bool
			egressPorts := map[string]bool{}
			for _, np := range f.netpols {
				sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
				if err != nil {
					t.Fatal(err)
				}
				if !sel.Matches(podLabels) {
					continue
				}
				for _, pt := range np.Spec.PolicyTypes {
					ingress = ingress || pt == networkingv1.PolicyTypeIngress
					egress = egress || pt == networkingv1.PolicyTypeEgress
				}
				for _, r := range np.Spec.Egress {
					for _, p := range r.Ports {
						egressPorts[p.Port.String()] = true
					}
				}
				for _, r := range np.Spec.Ingress {
					for _, p := range r.Ports {
						if containerPort(d.Spec.Template.Spec.Containers[0], p.Port.String()) < 0 {
							t.Errorf("%s: ingress to port %s, which the pod does not have", np.Name, p.Port.String())
						}
					}
					for _, from := range r.From {
						if from.NamespaceSelector == nil || from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
							t.Errorf("%s: ingress from %+v, want only the monitoring namespace", np.Name, from)
						}
					}
				}
			}
			if !ingress || !egress {
				t.Errorf("%s: not isolated (ingress %v, egress %v)", d.Name, ingress, egress)
			}
			for _, p := range needs[role] {
				if !egressPorts[p] {
					t.Errorf("%s: egress to port %s not allowed", d.Name, p)
				}
			}
			if role == config.RoleDispatcher && egressPorts["443"] {
				t.Errorf("%s: may reach the internet; it talks to no provider", d.Name)
			}
		}
	})
}

// TestAlerts: the alerts docs/operations.md explains exist, each with a
// runbook section, a severity and a summary.
func TestAlerts(t *testing.T) {
	runbook, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"HeraldDLQRate", "HeraldConsumerLagGrowing", "HeraldProviderErrorRate", "HeraldCircuitOpen", "HeraldNoProgress", "HeraldPartitionStalled", "HeraldGroupNotFormed", "HeraldRedisMayEvict"}
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		if len(f.rules) != 1 {
			t.Fatalf("%d PrometheusRules, want 1", len(f.rules))
		}
		var got []string
		for _, g := range f.rules[0].Spec.Groups {
			for _, r := range g.Rules {
				if r.Alert == "" {
					continue
				}
				got = append(got, r.Alert)
				if r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
					t.Errorf("%s: no severity or summary", r.Alert)
				}
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
				anchor := "#" + strings.ToLower(r.Alert)
				if !strings.HasSuffix(r.Annotations["runbook_url"], "docs/operations.md"+anchor) {
					t.Errorf("%s: runbook_url %q does not point at docs/operations.md%s", r.Alert, r.Annotations["runbook_url"], anchor)
				}
				if !bytes.Contains(runbook, []byte("\n### "+r.Alert+"\n")) {
					t.Errorf("%s: docs/operations.md has no section ### %s", r.Alert, r.Alert)
				}
			}
		}
		for _, a := range want {
			if !slices.Contains(got, a) {
				t.Errorf("no alert %s", a)
			}
		}
	})
}

// TestAlertMetricsExported: every herald_* series a rule reads is one the
// code exports (its name is a string in a non-test Go file of the module)
// and one docs/operations.md lists under Metrics, so an alert cannot watch
// a series that does not exist. HeraldPartitionStalled must read
// herald_partition_stalled_seconds, with a longer bound on retry topics,
// whose records wait for their not-before time on purpose.
func TestAlertMetricsExported(t *testing.T) {
	var code strings.Builder
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "deploy" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			code.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	metrics := string(doc[bytes.Index(doc, []byte("\n## Metrics\n")):])
	name := regexp.MustCompile(`\bherald_[a-z_]+\b`)
	forEachOverlay(t, func(t *testing.T, f *fleet) {
		stalled := ""
		for _, g := range f.rules[0].Spec.Groups {
			for _, r := range g.Rules {
				for _, m := range name.FindAllString(r.Expr, -1) {
					if !strings.Contains(code.String(), `"`+m+`"`) && !strings.Contains(code.String(), `"`+strings.TrimSuffix(m, "_total")+`"`) {
						t.Errorf("%s%s reads %s, which no Go file exports", r.Alert, r.Record, m)
					}
					if !strings.Contains(metrics, "`"+m+"`") {
						t.Errorf("%s%s reads %s, which docs/operations.md does not list under Metrics", r.Alert, r.Record, m)
					}
				}
				if r.Alert == "HeraldPartitionStalled" {
					stalled = r.Expr
				}
			}
		}
		if !strings.Contains(stalled, `herald_partition_stalled_seconds{topic!~".*\\.retry\\.v1"}) > 600`) ||
			!strings.Contains(stalled, `herald_partition_stalled_seconds{topic=~".*\\.retry\\.v1"}) > 3600`) {
			t.Errorf("HeraldPartitionStalled: expr %q, want 10 minutes on main topics and an hour on retry topics", stalled)
		}
	})
}
