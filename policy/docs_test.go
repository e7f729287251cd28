package policy

import (
	"os"
	"regexp"
	"testing"
)

// The YAML examples in docs/policy.md are manifests weftctl policy apply
// takes as they are.
func TestDocsExamplesParse(t *testing.T) {
	data, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(data, -1)
	if len(blocks) == 0 {
		t.Fatal("no ```yaml example in docs/policy.md")
	}
	for i, b := range blocks {
		nps, err := ParseManifests(b[1])
		if err != nil {
			t.Errorf("docs/policy.md YAML example %d: %v", i+1, err)
			continue
		}
		if len(nps) == 0 {
			t.Errorf("docs/policy.md YAML example %d holds no policy", i+1)
		}
	}
}
