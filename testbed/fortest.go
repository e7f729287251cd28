package testbed

import "testing"

// ForTest builds a bed of hosts for a test: it fails the test (never skips)
// when the machine cannot run it and removes the bed when the test ends.
func ForTest(t testing.TB, prefix string, hosts int) *Bed {
	t.Helper()
	return ForTestWith(t, prefix, hosts, Options{})
}

// ForTestWith is ForTest with options (a routed bed, another MTU).
func ForTestWith(t testing.TB, prefix string, hosts int, opts Options) *Bed {
	t.Helper()
	if err := CheckRoot(); err != nil {
		t.Fatal(err)
	}
	b, err := NewBed(prefix, hosts, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("testbed cleanup: %v", err)
		}
	})
	return b
}

// NSForTest creates one network namespace for a test: it fails the test
// (never skips) when the machine cannot run it and deletes the namespace
// when the test ends.
func NSForTest(t testing.TB, prefix string) *NS {
	t.Helper()
	if err := CheckRoot(); err != nil {
		t.Fatal(err)
	}
	ns, err := NewNS(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Delete(); err != nil {
			t.Errorf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns
}
