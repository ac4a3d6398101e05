package lab

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Report collects the scenario's steps with their timings.
type Report struct {
	mu    sync.Mutex
	start time.Time
	steps []StepResult
}

// StepResult is one reported step.
type StepResult struct {
	Name     string
	Duration time.Duration
	Passed   bool
	Note     string
}

// NewReport starts a report.
func NewReport() *Report { return &Report{start: time.Now()} }

// Step runs fn as subtest name and records its time and outcome. A failed
// step stops the scenario: later steps would only fail for the same reason.
func (r *Report) Step(t *testing.T, name string, fn func(t *testing.T) string) {
	t.Helper()
	if t.Failed() {
		r.add(StepResult{Name: name, Note: "not run: an earlier step failed"})
		t.SkipNow()
	}
	start := time.Now()
	var note string
	ok := t.Run(name, func(t *testing.T) { note = fn(t) })
	r.add(StepResult{Name: name, Duration: time.Since(start), Passed: ok, Note: note})
	if !ok {
		t.FailNow()
	}
}

// Note adds a line without a step (a measurement).
func (r *Report) Note(name, note string) {
	r.add(StepResult{Name: name, Passed: true, Note: note})
}

func (r *Report) add(s StepResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, s)
}

// String formats the report: one line per step.
func (r *Report) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	w := 0
	for _, s := range r.steps {
		w = max(w, len(s.Name))
	}
	fmt.Fprintf(&b, "lab report (%s in all)\n", time.Since(r.start).Round(100*time.Millisecond))
	for _, s := range r.steps {
		mark := "ok  "
		if !s.Passed {
			mark = "FAIL"
		}
		dur := ""
		if s.Duration > 0 {
			dur = s.Duration.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "  %s %-*s %8s  %s\n", mark, w, s.Name, dur, s.Note)
	}
	return b.String()
}
