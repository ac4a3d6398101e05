package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUninstallAsksFirst(t *testing.T) {
	for _, answer := range []string{"no\n", "\n", "", "y\n"} {
		cmd := newUninstallCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetIn(strings.NewReader(answer))
		cmd.SetArgs(nil)
		err := cmd.Execute()
		if err == nil || !strings.Contains(err.Error(), "nothing removed") {
			t.Errorf("answer %q: %v", answer, err)
		}
		if !strings.Contains(out.String(), "Type yes to continue") {
			t.Errorf("answer %q: no question asked: %s", answer, out.String())
		}
	}
}

func TestInstallHelpListsChanges(t *testing.T) {
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"install", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"firewall", "fail2ban", "sshd_config", "/usr/local/bin/portlama", "--skip-harden", "--dev", "--json", "--ip"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("install --help lacks %q", want)
		}
	}
}
