package etcdtest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// RootPassword is the password EnableAuth gives etcd's root user.
const RootPassword = "weft-test-root"

// EnableAuth turns etcd's authentication on through cli (a client without
// credentials) after creating the root user and user, whose only role
// grants read and write on the keys under prefix and nothing else. cli
// cannot be used afterwards: make clients with credentials.
func EnableAuth(t testing.TB, cli *clientv3.Client, prefix, user, password string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	role := user + "-prefix"
	steps := []struct {
		what string
		do   func() error
	}{
		{"add root user", func() error { _, err := cli.UserAdd(ctx, "root", RootPassword); return err }},
		{"grant root role", func() error { _, err := cli.UserGrantRole(ctx, "root", "root"); return err }},
		{"add role", func() error { _, err := cli.RoleAdd(ctx, role); return err }},
		{"grant the prefix", func() error {
			_, err := cli.RoleGrantPermission(ctx, role, prefix, clientv3.GetPrefixRangeEnd(prefix), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"add user", func() error { _, err := cli.UserAdd(ctx, user, password); return err }},
		{"grant the user its role", func() error { _, err := cli.UserGrantRole(ctx, user, role); return err }},
		{"enable auth", func() error { _, err := cli.AuthEnable(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("etcdtest: enable auth: %s: %v", s.what, err)
		}
	}
}
