package testutil

import "testing"

func TestParseProcMem(t *testing.T) {
	status := "Name:\tportlama\nVmRSS:\t   15360 kB\nRssAnon:\t    3072 kB\nRssFile:\t   12000 kB\nRssShmem:\t     288 kB\nThreads:\t7\n"
	rollup := "00400000-ffffffffff600000 ---p 00000000 00:00 0 [rollup]\nRss:   15360 kB\nPss:    7168 kB\n"
	got := ParseProcMem(status, rollup)
	want := ProcMem{RSS: 15, Anon: 3, File: 12288.0 / 1024, PSS: 7}
	if got != want {
		t.Fatalf("ParseProcMem = %+v, want %+v", got, want)
	}
	if z := ParseProcMem("", ""); z != (ProcMem{}) {
		t.Fatalf("empty input = %+v", z)
	}
	if s := got.Add(got); s.RSS != 30 || s.PSS != 14 {
		t.Fatalf("Add = %+v", s)
	}
}

func FuzzParseProcMem(f *testing.F) {
	f.Add("VmRSS:\t1 kB\nRssAnon: x kB\n", "Pss: 2 kB")
	f.Add(":\n:::\nRssFile:", "")
	f.Fuzz(func(t *testing.T, status, rollup string) {
		// Any text parses without panicking; only the named keys count.
		if m := ParseProcMem(status, rollup); m != ParseProcMem(status+"\nOther: 5 kB", rollup+"\nRss: 9 kB") {
			t.Fatalf("unrelated keys changed the result: %+v", m)
		}
	})
}
