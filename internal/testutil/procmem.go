package testutil

import (
	"strconv"
	"strings"
)

// ProcMem is a process's resident memory in MiB, as benchmarks and the lab
// report it: RSS counts the binary's page-cache pages in every process that
// maps them, PSS shares them out, Anon is what the process holds itself.
type ProcMem struct{ RSS, Anon, File, PSS float64 }

// Add returns the sum of m and o.
func (m ProcMem) Add(o ProcMem) ProcMem {
	return ProcMem{m.RSS + o.RSS, m.Anon + o.Anon, m.File + o.File, m.PSS + o.PSS}
}

// ParseProcMem reads VmRSS, RssAnon and RssFile (+RssShmem) from the text
// of /proc/<pid>/status and Pss from /proc/<pid>/smaps_rollup (either may
// be empty).
func ParseProcMem(status, smapsRollup string) ProcMem {
	var m ProcMem
	for k, v := range procFields(status) {
		switch k {
		case "VmRSS":
			m.RSS = v
		case "RssAnon":
			m.Anon = v
		case "RssFile", "RssShmem":
			m.File += v
		}
	}
	m.PSS = procFields(smapsRollup)["Pss"]
	return m
}

// procFields parses "Key:   123 kB" lines into MiB by key.
func procFields(text string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		if kb, err := strconv.ParseFloat(f[0], 64); err == nil {
			out[k] = kb / 1024
		}
	}
	return out
}
