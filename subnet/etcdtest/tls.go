package etcdtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/weftnet/weft/addrtest"
	"github.com/weftnet/weft/subnet"
)

// TLSServer is an etcd member that serves clients over TLS only and
// requires client certificates signed by CAFile.
type TLSServer struct {
	*Server
	// CAFile signed the server and client certificates.
	CAFile string
	// CertFile and KeyFile are a client certificate the server accepts.
	CertFile, KeyFile string
	// WrongCAFile is a CA that signed nothing here, to test failures.
	WrongCAFile string
}

// StartTLS generates a CA, server and client certificates into
// t.TempDir() and starts a TLS-only member, stopped when the test ends.
func StartTLS(t testing.TB) *TLSServer {
	t.Helper()
	dir := t.TempDir()
	ca := newCA(t, "etcdtest CA")
	wrong := newCA(t, "etcdtest unrelated CA")
	ts := &TLSServer{
		CAFile:      writePEM(t, dir, "ca.crt", "CERTIFICATE", ca.der),
		WrongCAFile: writePEM(t, dir, "wrong-ca.crt", "CERTIFICATE", wrong.der),
	}
	serverCert, serverKey := ca.issue(t, "etcd server", x509.ExtKeyUsageServerAuth)
	clientCert, clientKey := ca.issue(t, "weft client", x509.ExtKeyUsageClientAuth)
	ts.CertFile = writePEM(t, dir, "client.crt", "CERTIFICATE", clientCert)
	ts.KeyFile = writePEM(t, dir, "client.key", "PRIVATE KEY", clientKey)
	opts := memberOptions(t, "tls0", t.TempDir())
	opts.ClientURL = "https://" + addrtest.FreeTCP(t)
	opts.InitialCluster = opts.Name + "=" + opts.PeerURL
	opts.ServerCertFile = writePEM(t, dir, "server.crt", "CERTIFICATE", serverCert)
	opts.ServerKeyFile = writePEM(t, dir, "server.key", "PRIVATE KEY", serverKey)
	opts.ClientCAFile = ts.CAFile
	opts.ClientCertAuth = true
	ts.Server = &Server{opts: opts}
	ts.start(t)
	t.Cleanup(ts.Stop)
	return ts
}

// ClientOptions returns options that reach the server with the client
// certificate.
func (ts *TLSServer) ClientOptions() subnet.ClientOptions {
	return subnet.ClientOptions{Endpoints: ts.Endpoints(), CAFile: ts.CAFile, CertFile: ts.CertFile, KeyFile: ts.KeyFile}
}

// Client returns a TLS client with the client certificate.
func (ts *TLSServer) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return NewClient(t, ts.ClientOptions())
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	der  []byte
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("etcdtest: create CA: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("etcdtest: parse CA: %v", err)
	}
	return &testCA{cert: cert, key: key, der: der}
}

// issue signs a leaf certificate valid for 127.0.0.1 and localhost.
func (ca *testCA) issue(t testing.TB, name string, usage x509.ExtKeyUsage) (certDER, keyDER []byte) {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: serial(t),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("etcdtest: issue %s certificate: %v", name, err)
	}
	keyDER, err = x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("etcdtest: encode key: %v", err)
	}
	return certDER, keyDER
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("etcdtest: generate key: %v", err)
	}
	return key
}

func serial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("etcdtest: serial: %v", err)
	}
	return n
}

func writePEM(t testing.TB, dir, name, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatalf("etcdtest: write %s: %v", path, err)
	}
	return path
}
