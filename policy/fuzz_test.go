package policy

import (
	"encoding/json"
	"testing"
)

// FuzzParseManifests: any input either is refused or yields policies that
// validate, compile, and read back the same from their JSON (what weftctl
// stores and weftd parses again).
func FuzzParseManifests(f *testing.F) {
	f.Add([]byte(upstreamExample))
	for _, tc := range compileCases {
		f.Add([]byte(tc.yaml))
	}
	f.Add([]byte(`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"a"},"spec":{"podSelector":{}}}`))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: []\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nps, err := ParseManifests(data)
		if err != nil {
			if nps != nil {
				t.Fatalf("policies returned with error %v", err)
			}
			return
		}
		in := world()
		for i := range nps {
			if err := Validate(&nps[i]); err != nil {
				t.Fatalf("accepted policy does not validate: %v", err)
			}
			raw, err := json.Marshal(nps[i])
			if err != nil {
				t.Fatal(err)
			}
			again, err := ParseManifests(raw)
			if err != nil || len(again) != 1 {
				t.Fatalf("stored form %s does not parse back: %v", raw, err)
			}
			raw2, _ := json.Marshal(again[0])
			if string(raw) != string(raw2) {
				t.Fatalf("round trip changed the policy:\n%s\n%s", raw, raw2)
			}
		}
		in.Policies = nps
		if rs, err := Compile(in); err != nil || len(rs.Rejected) > 0 {
			t.Fatalf("accepted policies do not compile: %v %+v", err, rs.Rejected)
		}
	})
}
