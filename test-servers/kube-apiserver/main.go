// Command kube-apiserver-dev runs a real kube-apiserver (k8s.io/kubernetes) against an
// embedded etcd (go.etcd.io/etcd/server/v3), both on 127.0.0.1, for nebula-credential's
// integration tests. `cargo xtask emulators up kubernetes` builds it into target/ and
// starts it.
//
// In --dir it writes: a private CA and a serving certificate (pki/), a static token file
// with an admin token (group system:masters) and a restricted user, admin.kubeconfig and
// restricted.kubeconfig, and finally the file "ready" once /readyz answers and RBAC is
// bootstrapped: the restricted user may only get/list/watch Secrets in namespace
// nebula-restricted, so 403 cases are real.
//
// Started again on a --dir it wrote before (after a kill -9, for the restart tests), it
// keeps what is there: the same certificates, tokens and etcd data, so clients holding the
// old kubeconfig reconnect; it removes the "ready" marker at once and writes it again when
// the restarted server answers (the bootstrap objects exist already and are kept).
//
// To kill etcd and the apiserver apart, run them as two processes on the same --dir:
// `--etcd-only` runs only etcd (and writes "etcd-ready"), `--external-etcd` runs the
// apiserver against the etcd at --etcd-port instead of starting one.
//
// Usage: kube-apiserver-dev --dir DIR --port PORT --etcd-port PORT --etcd-peer-port PORT
//
//	[--etcd-only | --external-etcd]
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

const (
	restrictedUser      = "nebula-restricted"
	restrictedNamespace = "nebula-restricted"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kube-apiserver-dev: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	dir := flag.String("dir", "", "working directory (required)")
	port := flag.Int("port", 0, "kube-apiserver HTTPS port on 127.0.0.1 (required)")
	etcdPort := flag.Int("etcd-port", 0, "etcd client port on 127.0.0.1 (required)")
	etcdPeerPort := flag.Int("etcd-peer-port", 0, "etcd peer port on 127.0.0.1 (required)")
	etcdOnly := flag.Bool("etcd-only", false, "run only etcd, for an apiserver started with --external-etcd")
	externalEtcd := flag.Bool("external-etcd", false, "use the etcd at --etcd-port instead of starting one")
	flag.Parse()
	if *etcdOnly {
		if *dir == "" || *etcdPort == 0 || *etcdPeerPort == 0 {
			fail("--etcd-only needs --dir, --etcd-port and --etcd-peer-port")
		}
		runEtcdOnly(*dir, *etcdPort, *etcdPeerPort)
		return
	}
	if *dir == "" || *port == 0 || *etcdPort == 0 || (*etcdPeerPort == 0 && !*externalEtcd) {
		fail("--dir, --port, --etcd-port and --etcd-peer-port are required")
	}
	pki := filepath.Join(*dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		fail("cannot create %s: %v", pki, err)
	}
	ready := filepath.Join(*dir, "ready")
	if err := os.Remove(ready); err != nil && !os.IsNotExist(err) {
		fail("cannot remove the old ready marker %s: %v", ready, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if os.IsNotExist(err) {
		caPEM, err = writePKI(pki)
	}
	if err != nil {
		fail("cannot write or read certificates: %v", err)
	}
	tokenFile := filepath.Join(*dir, "tokens.csv")
	adminToken, restrictedToken, err := readTokens(tokenFile)
	if os.IsNotExist(err) {
		adminToken, restrictedToken = randomToken(), randomToken()
		tokens := fmt.Sprintf("%s,nebula-admin,nebula-admin,\"system:masters\"\n%s,%s,%s,\"nebula:restricted\"\n",
			adminToken, restrictedToken, restrictedUser, restrictedUser)
		err = os.WriteFile(tokenFile, []byte(tokens), 0o600)
	}
	if err != nil {
		fail("cannot write or read %s: %v", tokenFile, err)
	}

	if !*externalEtcd {
		etcd := startEtcd(filepath.Join(*dir, "etcd"), *etcdPort, *etcdPeerPort)
		defer etcd.Close()
	}

	server := fmt.Sprintf("https://127.0.0.1:%d", *port)
	go bootstrap(*dir, server, caPEM, adminToken, restrictedToken)

	command := app.NewAPIServerCommand()
	command.SetArgs([]string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", *port),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", *etcdPort),
		"--tls-cert-file=" + filepath.Join(pki, "server.crt"),
		"--tls-private-key-file=" + filepath.Join(pki, "server.key"),
		"--cert-dir=" + filepath.Join(*dir, "certs"),
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=RBAC",
		"--anonymous-auth=false",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-account-signing-key-file=" + filepath.Join(pki, "sa.key"),
		"--service-cluster-ip-range=10.96.0.0/24",
		"--enable-priority-and-fairness=false",
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		"--v=0",
	})
	os.Exit(cli.Run(command))
}

// runEtcdOnly runs etcd alone on its data in dir, writes dir/etcd-ready (removed at
// start) once it serves, and runs until killed or etcd stops.
func runEtcdOnly(dir string, port, peerPort int) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fail("cannot create %s: %v", dir, err)
	}
	ready := filepath.Join(dir, "etcd-ready")
	if err := os.Remove(ready); err != nil && !os.IsNotExist(err) {
		fail("cannot remove the old marker %s: %v", ready, err)
	}
	etcd := startEtcd(filepath.Join(dir, "etcd"), port, peerPort)
	defer etcd.Close()
	if err := os.WriteFile(ready, []byte(fmt.Sprintf("http://127.0.0.1:%d\n", port)), 0o600); err != nil {
		fail("cannot write %s: %v", ready, err)
	}
	fail("etcd stopped: %v", <-etcd.Err())
}

func startEtcd(dataDir string, port, peerPort int) *embed.Etcd {
	cfg := embed.NewConfig()
	cfg.Dir = dataDir
	cfg.LogLevel = "warn"
	client, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", port))
	peer, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", peerPort))
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	etcd, err := embed.StartEtcd(cfg)
	if err != nil {
		fail("etcd failed to start: %v", err)
	}
	select {
	case <-etcd.Server.ReadyNotify():
		fmt.Fprintf(os.Stderr, "kube-apiserver-dev: etcd ready on %s\n", client)
	case <-time.After(60 * time.Second):
		fail("etcd not ready after 60 s")
	}
	return etcd
}

// readTokens reads the admin and restricted tokens of a token file written by an earlier
// start (its first two lines, first field each).
func readTokens(path string) (string, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", "", err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		return "", "", fmt.Errorf("%s has %d lines, expected 2", path, len(lines))
	}
	admin, _, _ := strings.Cut(lines[0], ",")
	restricted, _, _ := strings.Cut(lines[1], ",")
	return admin, restricted, nil
}

// created passes err unless it says the object exists already (a restart on old data).
func created(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		fail("no randomness: %v", err)
	}
	return hex.EncodeToString(b)
}

// writePKI creates a CA, a serving certificate for 127.0.0.1/localhost signed by it, and
// a service-account key. It returns the CA certificate in PEM.
func writePKI(dir string) ([]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "nebula-credential test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	serverKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serverTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
	}
	serverDER, err := x509.CreateCertificate(rand.Reader, serverTemplate, caCert, &serverKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	serverKeyDER, _ := x509.MarshalECPrivateKey(serverKey)
	files := map[string][]byte{
		"ca.crt":     caPEM,
		"server.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: serverDER}),
		"server.key": pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: serverKeyDER}),
		"sa.key":     pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return caPEM, nil
}

// bootstrap waits for /readyz, grants the restricted user read access to Secrets in its
// namespace, writes the kubeconfigs and finally the "ready" marker.
func bootstrap(dir, server string, caPEM []byte, adminToken, restrictedToken string) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	httpClient := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	deadline := time.Now().Add(180 * time.Second)
	for {
		req, _ := http.NewRequest("GET", server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := httpClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			fail("kube-apiserver not ready after 180 s (last error: %v)", err)
		}
		time.Sleep(250 * time.Millisecond)
	}

	admin := kubeconfig(server, caPEM, "nebula-admin", adminToken, "default")
	restricted := kubeconfig(server, caPEM, restrictedUser, restrictedToken, restrictedNamespace)
	adminPath := filepath.Join(dir, "admin.kubeconfig")
	if err := clientcmd.WriteToFile(*admin, adminPath); err != nil {
		fail("cannot write %s: %v", adminPath, err)
	}
	restConfig, err := clientcmd.BuildConfigFromFlags("", adminPath)
	if err != nil {
		fail("cannot load %s: %v", adminPath, err)
	}
	client := kubernetes.NewForConfigOrDie(restConfig)
	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: restrictedNamespace},
	}, metav1.CreateOptions{}); created(err) != nil {
		fail("cannot create namespace: %v", err)
	}
	if _, err := client.RbacV1().Roles(restrictedNamespace).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""},
			Resources: []string{"secrets"},
			Verbs:     []string{"get", "list", "watch"},
		}},
	}, metav1.CreateOptions{}); created(err) != nil {
		fail("cannot create role: %v", err)
	}
	if _, err := client.RbacV1().RoleBindings(restrictedNamespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "secret-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "secret-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: restrictedUser}},
	}, metav1.CreateOptions{}); created(err) != nil {
		fail("cannot create role binding: %v", err)
	}
	restrictedPath := filepath.Join(dir, "restricted.kubeconfig")
	if err := clientcmd.WriteToFile(*restricted, restrictedPath); err != nil {
		fail("cannot write %s: %v", restrictedPath, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte(server+"\n"), 0o600); err != nil {
		fail("cannot write ready marker: %v", err)
	}
	fmt.Fprintf(os.Stderr, "kube-apiserver-dev: ready on %s\n", server)
}

func kubeconfig(server string, caPEM []byte, user, token, namespace string) *clientcmdapi.Config {
	c := clientcmdapi.NewConfig()
	c.Clusters["nebula"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	c.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	c.Contexts["nebula"] = &clientcmdapi.Context{Cluster: "nebula", AuthInfo: user, Namespace: namespace}
	c.CurrentContext = "nebula"
	return c
}
