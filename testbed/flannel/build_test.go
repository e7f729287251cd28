//go:build !unit

package flannel

import (
	"strings"
	"testing"
)

func TestDropBackends(t *testing.T) {
	src := "import (\n\t_ \"github.com/flannel-io/flannel/pkg/backend/udp\"\n\t_ \"github.com/flannel-io/flannel/pkg/backend/ipsec\"\n\t_ \"github.com/flannel-io/flannel/pkg/backend/vxlan\"\n)\n"
	got, err := DropBackends([]byte(src), []string{"ipsec"})
	if err != nil || strings.Contains(string(got), "ipsec") || !strings.Contains(string(got), "backend/vxlan\"\n") {
		t.Fatalf("%s %v", got, err)
	}
	if _, err := DropBackends([]byte(src), []string{"tencentvpc"}); err == nil {
		t.Fatal("a missing import line was not reported")
	}
}
