package cluster

import (
	"archive/tar"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftnet/weft/testbed"
)

// PodmanImage is the image every Podman imports: busybox-static with its
// applets linked in /bin and a page to serve at /www/index.html.
const PodmanImage = "localhost/weft-busybox:latest"

// PodmanPage is the content of /www/index.html in PodmanImage.
const PodmanPage = "served by busybox httpd in podman\n"

// Podman is Debian's podman (CNI backend) confined to one node: its own
// storage, run root, containers.conf and CNI config directory under Dir,
// run inside the node's network namespace and inside a mount namespace of
// its own, held by a process of the testbed, where cgroup2 is mounted on
// /sys/fs/cgroup (ip netns exec gives a fresh /sys without it). All podman
// commands share that mount namespace, so the network namespaces podman
// mounts for its containers are seen by every later command and by no one
// outside. Close removes every container it made.
type Podman struct {
	Node   *Node
	Dir    string
	holder *testbed.Proc
	env    []string
	sand   map[string]bool // network namespace files of started containers
}

// StartPodman prepares podman on the node: containers.conf, the CNI config
// directory (NetworkDir), storage, and PodmanImage imported from
// busybox-static. CNI plugins are looked up in the cluster's Bin, then in
// Debian's /usr/lib/cni.
func (n *Node) StartPodman(ctx context.Context) (*Podman, error) {
	if _, err := exec.LookPath("podman"); err != nil {
		return nil, fmt.Errorf("podman is not installed (Debian: apt-get install podman; scripts/deps.sh): %w", err)
	}
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		return nil, fmt.Errorf("busybox is not installed (Debian: apt-get install busybox-static): %w", err)
	}
	if err := checkStatic(busybox); err != nil {
		return nil, err
	}
	dir := filepath.Join(n.Dir, "podman")
	for _, d := range []string{"root", "run", "tmp", "net.d"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("podman: %w", err)
		}
	}
	conf := fmt.Sprintf(`[network]
network_backend = "cni"
cni_plugin_dirs = [%q, "/usr/lib/cni"]
network_config_dir = %q
default_network = "none-by-default"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "none"
tmp_dir = %q

[containers]
cgroups = "disabled"
default_ulimits = ["nofile=4096:4096", "nproc=16384:16384"]
`, n.cluster.opts.Bin, filepath.Join(dir, "net.d"), filepath.Join(dir, "tmp"))
	confPath := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("podman: %w", err)
	}
	holder, err := n.cluster.Bed.Start(n.Host, filepath.Join(dir, "holder.log"), "sh", "-c",
		"mount -t cgroup2 cgroup2 /sys/fs/cgroup && echo ready && exec sleep 1000000")
	if err != nil {
		return nil, fmt.Errorf("podman: mount namespace holder: %w", err)
	}
	p := &Podman{Node: n, Dir: dir, holder: holder, sand: map[string]bool{},
		env: []string{"CONTAINERS_CONF=" + confPath, "TMPDIR=" + filepath.Join(dir, "tmp")}}
	err = testbed.WaitFor(ctx, 50*time.Millisecond, func() error {
		if holder.Exited() {
			data, _ := os.ReadFile(holder.LogPath)
			return fmt.Errorf("podman: mount namespace holder exited: %s", data)
		}
		if data, _ := os.ReadFile(holder.LogPath); !strings.Contains(string(data), "ready") {
			return errors.New("mount namespace holder not ready")
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("podman: %w", err)
	}
	image := filepath.Join(dir, "busybox.tar")
	if err := writeBusyboxImage(image, busybox); err != nil {
		return nil, fmt.Errorf("podman: image: %w", err)
	}
	if out, err := p.Run(ctx, "import", image, PodmanImage); err != nil {
		return nil, fmt.Errorf("podman import: %w: %s", err, out)
	}
	return p, nil
}

// NetworkDir is podman's CNI config directory (network_config_dir).
func (p *Podman) NetworkDir() string { return filepath.Join(p.Dir, "net.d") }

// AddNetwork writes a conflist for podman.
func (p *Podman) AddNetwork(name string, conflist any) error {
	data, err := json.MarshalIndent(conflist, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.NetworkDir(), name+".conflist"), data, 0o644)
}

// Run runs podman with args and returns its combined output.
func (p *Podman) Run(ctx context.Context, args ...string) (string, error) {
	return p.RunEnv(ctx, nil, args...)
}

// RunEnv is Run with extra environment variables for podman (e.g. a
// CNI_ARGS it passes on to the plugins).
func (p *Podman) RunEnv(ctx context.Context, env []string, args ...string) (string, error) {
	full := append([]string{"--target", fmt.Sprint(p.holder.Pid), "--mount", "--net", "env"}, p.env...)
	full = append(full, env...)
	full = append(full, "podman", "--root", filepath.Join(p.Dir, "root"), "--runroot", filepath.Join(p.Dir, "run"),
		"--storage-driver", "vfs")
	full = append(full, args...)
	out, err := exec.CommandContext(ctx, "nsenter", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("node %d: podman %s: %w: %s", p.Node.Index+1, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// RunDetached starts a container (podman run -d) and returns its ID.
func (p *Podman) RunDetached(ctx context.Context, args ...string) (string, error) {
	return p.RunDetachedEnv(ctx, nil, args...)
}

// RunDetachedEnv is RunDetached with extra environment variables for podman.
func (p *Podman) RunDetachedEnv(ctx context.Context, env []string, args ...string) (string, error) {
	out, err := p.RunEnv(ctx, env, append([]string{"run", "-d"}, args...)...)
	if err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	id := lines[len(lines)-1]
	if key, err := p.Run(ctx, "inspect", "-f", "{{.NetworkSettings.SandboxKey}}", id); err == nil {
		p.sand[strings.TrimSpace(key)] = true
	}
	return id, nil
}

// IP is the address of the container on network.
func (p *Podman) IP(ctx context.Context, container, network string) (string, error) {
	out, err := p.Run(ctx, "inspect", "-f", fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, network), container)
	if err != nil {
		return "", err
	}
	ip := strings.TrimSpace(out)
	if ip == "" {
		return "", fmt.Errorf("node %d: container %s has no address on %s", p.Node.Index+1, container, network)
	}
	return ip, nil
}

// Close removes every container (with its CNI DEL) and checks that no
// network namespace podman mounted is left; the testbed ends the holder.
func (p *Podman) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var errs []error
	if out, err := p.Run(ctx, "rm", "-a", "-f", "-t", "0"); err != nil {
		errs = append(errs, fmt.Errorf("remove containers: %w: %s", err, out))
	}
	if out, err := p.Run(ctx, "ps", "-a", "-q"); err != nil || strings.TrimSpace(out) != "" {
		errs = append(errs, fmt.Errorf("containers left after podman rm -a: %q %v", out, err))
	}
	for key := range p.sand {
		if key == "" {
			continue
		}
		if _, err := os.Stat(key); err == nil {
			errs = append(errs, fmt.Errorf("podman left its network namespace file %s", key))
			os.Remove(key)
		}
	}
	return errors.Join(errs...)
}

// writeBusyboxImage writes a root filesystem tarball: busybox at /bin/busybox,
// its applets as symlinks in /bin, and /www/index.html.
func writeBusyboxImage(path, busybox string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	add := func(h *tar.Header, body []byte) error {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	err = errors.Join(
		add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, nil),
		add(&tar.Header{Name: "www/", Typeflag: tar.TypeDir, Mode: 0o755}, nil),
		add(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, nil),
		add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))}, bin),
		add(&tar.Header{Name: "www/index.html", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(PodmanPage))}, []byte(PodmanPage)),
	)
	for _, applet := range []string{"sh", "sleep", "ping", "ip", "wget", "httpd", "cat", "true", "ls"} {
		err = errors.Join(err, add(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, nil))
	}
	return errors.Join(err, tw.Close(), f.Close())
}

// checkStatic refuses a dynamically linked busybox: the image holds no
// libraries, so every container made from it would exit at once ("exec
// container process (missing dynamic library?)"), which the tests would
// see only as a container without an address. Debian's busybox package is
// dynamically linked; busybox-static replaces it.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("busybox %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp := make([]byte, min(p.Filesz, 256))
			n, _ := p.ReadAt(interp, 0)
			return fmt.Errorf("busybox %s is dynamically linked (interpreter %s): the podman test image needs a static busybox "+
				"(Debian: apt-get install busybox-static, which replaces busybox; scripts/deps.sh does it)",
				path, strings.TrimRight(string(interp[:n]), "\x00"))
		}
	}
	return nil
}
