package lab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// registryDir records every running lab, so a lab whose test process died
// (a timeout kills it without cleanups) is cleaned up by the next one.
const registryDir = "/run/portlama-lab"

// register records this lab: its owner, its directory and, as they are
// made, its mounts.
func (l *Lab) register() error {
	dir := filepath.Join(registryDir, l.prefix)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	files := map[string]string{"owner": strconv.Itoa(os.Getpid()), "dir": l.dir}
	for name, v := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600); err != nil {
			return err
		}
	}
	l.onClose(func() { os.RemoveAll(dir) })
	return nil
}

// recordMount notes a mount of the lab for the sweeper.
func (l *Lab) recordMount(path string) {
	f, err := os.OpenFile(filepath.Join(registryDir, l.prefix, "mounts"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(path + "\n")
}

// keptFor is how long the files of a failed run stay for inspection.
const keptFor = 24 * time.Hour

// sweep removes what dead labs left behind (mounts, network namespaces,
// cgroups and their directories) and the files of failed runs older than
// keptFor.
func sweep(logf func(string, ...any)) {
	defer pruneKept()
	entries, _ := os.ReadDir(registryDir)
	for _, e := range entries {
		prefix := e.Name()
		dir := filepath.Join(registryDir, prefix)
		owner, _ := os.ReadFile(filepath.Join(dir, "owner"))
		pid, err := strconv.Atoi(strings.TrimSpace(string(owner)))
		if err == nil && pid > 0 {
			if kerr := syscall.Kill(pid, 0); kerr == nil || errors.Is(kerr, syscall.EPERM) {
				continue // still running
			}
		}
		logf("lab: cleaning up after the dead lab %s", prefix)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		mounts, _ := os.ReadFile(filepath.Join(dir, "mounts"))
		for _, m := range strings.Fields(string(mounts)) {
			run(ctx, "umount", "-l", m)
		}
		if out, err := run(ctx, "ip", "netns", "list"); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				if ns := strings.Fields(line); len(ns) > 0 && strings.HasPrefix(ns[0], prefix+"-") {
					run(ctx, "ip", "netns", "del", ns[0])
				}
			}
		}
		cancel()
		for _, h := range cgroupHierarchies {
			cgs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", h, prefix+"*"))
			for _, cg := range cgs {
				removeCgroupTree(cg)
			}
		}
		if labDir, err := os.ReadFile(filepath.Join(dir, "dir")); err == nil && strings.HasPrefix(string(labDir), "/var/tmp/portlama-lab-") {
			os.RemoveAll(string(labDir))
		}
		os.RemoveAll(dir)
	}
}

// pruneKept removes old lab directories that no running lab owns.
func pruneKept() {
	owned := map[string]bool{}
	entries, _ := os.ReadDir(registryDir)
	for _, e := range entries {
		if d, err := os.ReadFile(filepath.Join(registryDir, e.Name(), "dir")); err == nil {
			owned[string(d)] = true
		}
	}
	dirs, _ := filepath.Glob("/var/tmp/portlama-lab-*")
	for _, d := range dirs {
		fi, err := os.Stat(d)
		if err != nil || owned[d] || time.Since(fi.ModTime()) < keptFor {
			continue
		}
		// A mount still inside means something is alive: leave it.
		if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil && strings.Contains(string(mounts), " "+d+"/") {
			continue
		}
		os.RemoveAll(d)
	}
}
