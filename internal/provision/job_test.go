package provision

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/errkind"
)

func panelIn(t *testing.T, status string) *config.PanelStore {
	t.Helper()
	dir := t.TempDir()
	doc := `{"ip":"127.0.0.1","dataDir":"` + dir + `","domain":"example.com","email":"a@example.com","onboarding":{"status":"` + status + `"}}`
	if err := os.WriteFile(filepath.Join(dir, "panel.json"), []byte(doc), 0o640); err != nil {
		t.Fatal(err)
	}
	return config.NewPanelStore(filepath.Join(dir, "panel.json"))
}

func fakeTasks(fail *error, finalize func(*Run)) []Task {
	var ts []Task
	for _, id := range []string{TaskStartTunnel, TaskStartAuth, TaskIssueCerts, TaskConfigureNginx, TaskVerify, TaskFinalize} {
		ts = append(ts, Task{ID: id, Title: "Title " + id, Run: func(_ context.Context, r *Run) (string, *string, error) {
			if id == TaskIssueCerts && *fail != nil {
				l := "log line"
				return "", &l, *fail
			}
			if id == TaskStartAuth {
				r.AdminPassword = "secret-pw"
			}
			if id == TaskFinalize {
				finalize(r)
			}
			return id + " ok", nil, nil
		}})
	}
	return ts
}

func frames(t *testing.T, ch <-chan []byte, done <-chan struct{}) []api.ProvisionFrame {
	t.Helper()
	var out []api.ProvisionFrame
	for {
		select {
		case f := <-ch:
			var fr api.ProvisionFrame
			if err := json.Unmarshal(f, &fr); err != nil {
				t.Fatal(err)
			}
			out = append(out, fr)
		case <-done:
			for {
				select {
				case f := <-ch:
					var fr api.ProvisionFrame
					json.Unmarshal(f, &fr)
					out = append(out, fr)
				default:
					return out
				}
			}
		}
	}
}

func TestJobFailureThenRetry(t *testing.T) {
	ps := panelIn(t, config.StatusDNSReady)
	fail := error(errors.New("CA unreachable"))
	j := NewJob(fakeTasks(&fail, func(r *Run) {
		ps.Update(func(c *config.PanelConfig) error { c.Onboarding.Status = config.StatusCompleted; return nil })
		r.Result = api.ProvisionResult{AdminUsername: "admin", PanelURL: "https://panel.example.com", AuthURL: "https://auth.example.com"}
	}), ps, nil)
	j.ttl = 50 * time.Millisecond

	snap, ch, cancel, err := j.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	var st api.ProvisionState
	json.Unmarshal(snap, &st)
	if st.Type != "state" || st.IsRunning || len(st.Tasks) != 6 || st.Tasks[0].Status != api.TaskPending {
		t.Fatalf("initial snapshot %s", snap)
	}
	if err := j.Start(); err != nil {
		t.Fatal(err)
	}
	fs := frames(t, ch, j.Done())
	// running+done for two tasks, running and the failure of the third.
	if len(fs) != 6 || fs[4].Task != TaskIssueCerts || fs[4].Status != "running" || fs[5].Status != "error" ||
		fs[5].Message != "Failed: Title issue-certs" || string(fs[5].Error) != `"CA unreachable"` || fs[5].Progress.Current != 2 {
		t.Fatalf("frames %+v", fs)
	}
	if c, _ := ps.Load(); c.Onboarding.Status != config.StatusProvisioning {
		t.Fatalf("state after a failure: %s", c.Onboarding.Status)
	}
	st = j.Snapshot()
	if st.IsRunning || st.Error == nil || st.Error.Task != TaskIssueCerts || st.Tasks[2].Status != api.TaskError || st.Tasks[1].Status != api.TaskDone || st.Tasks[3].Status != api.TaskPending {
		t.Fatalf("snapshot after failure %+v", st)
	}

	fail = nil
	if err := j.Start(); err != nil {
		t.Fatal(err)
	}
	// A second start while running is refused.
	if err := j.Start(); !errors.Is(err, errkind.Conflict) && !errors.Is(err, errkind.Gone) {
		t.Fatalf("second start: %v", err)
	}
	fs = frames(t, ch, j.Done())
	last := fs[len(fs)-1]
	if len(fs) != 13 || last.Task != "complete" || last.Status != "done" || last.Result == nil || last.Result.AdminPassword == nil ||
		*last.Result.AdminPassword != "secret-pw" || last.Progress.Current != 6 {
		t.Fatalf("frames of the retry: %d, last %+v", len(fs), last)
	}
	for i, f := range fs[:12] {
		want := []string{"running", "done"}[i%2]
		if f.Status != want || f.Task != j.tasks[i/2].ID || f.Title == "" {
			t.Fatalf("frame %d: %+v", i, f)
		}
	}
	if st := j.Snapshot(); st.Result == nil || st.Result.AdminPassword == nil {
		t.Fatalf("password not in the snapshot right after the run: %+v", st.Result)
	}
	deadline := time.Now().Add(5 * time.Second)
	for j.Snapshot().Result.AdminPassword != nil {
		if time.Now().After(deadline) {
			t.Fatal("the password was not wiped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := j.Start(); !errors.Is(err, errkind.Gone) {
		t.Fatalf("start after completion: %v", err)
	}
}

func TestJobRefusesBeforeDNS(t *testing.T) {
	for _, s := range []string{config.StatusFresh, config.StatusDomainSet} {
		var fail error
		j := NewJob(fakeTasks(&fail, func(*Run) {}), panelIn(t, s), nil)
		if err := j.Start(); !errors.Is(err, errkind.Conflict) || errkind.Message(err) != api.MsgNeedDNS {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestEncodeEventRefusesBadFrames(t *testing.T) {
	for name, e := range map[string]any{
		"not a frame":      struct{}{},
		"bad status":       api.ProvisionProgressEvent{Task: "x", Status: "weird", Progress: api.ProvisionProgress{Current: 1, Total: 6}},
		"progress > total": api.ProvisionProgressEvent{Task: "x", Status: "done", Progress: api.ProvisionProgress{Current: 7, Total: 6}},
		"bad completion":   api.ProvisionCompleteEvent{Task: "x", Status: "done", Progress: api.ProvisionProgress{Current: 6, Total: 6}},
		"bad snapshot":     api.ProvisionState{Type: "x"},
		"bad task status":  api.ProvisionState{Type: "state", Tasks: []api.ProvisionTask{{ID: "a", Status: "x"}}},
	} {
		if _, err := EncodeEvent(e); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	b, err := EncodeEvent(api.ProvisionProgressEvent{Task: "a", Title: "A", Status: "running", Message: "m", Progress: api.ProvisionProgress{Current: 1, Total: 6}})
	if err != nil || string(b) != `{"task":"a","title":"A","status":"running","message":"m","log":null,"progress":{"current":1,"total":6}}` {
		t.Fatalf("%s %v", b, err)
	}
	b, _ = EncodeEvent(api.ProvisionState{Type: "state"})
	if string(b) != `{"type":"state","isRunning":false,"tasks":[],"error":null,"result":null}` {
		t.Fatalf("%s", b)
	}
}

// FuzzEncodeEvent: whatever the fields, an encoded frame is one JSON object
// that decodes back to the same values.
func FuzzEncodeEvent(f *testing.F) {
	f.Add(0, "start-tunnel-server", "Starting tunnel server", "running", "msg", "log", 1, 6)
	f.Add(1, "complete", "", "done", "Provisioning complete", "pw", 6, 6)
	f.Add(2, "issue-certs", "", "error", "Failed: x", "Let's Encrypt could not reach \u2028", 2, 6)
	f.Add(3, "x", "y", "pending", "\x00", "", 0, 1)
	f.Fuzz(func(t *testing.T, kind int, task, title, status, msg, extra string, cur, total int) {
		var e any
		switch kind % 4 {
		case 0:
			e = api.ProvisionProgressEvent{Task: task, Title: title, Status: status, Message: msg, Log: &extra, Progress: api.ProvisionProgress{Current: cur, Total: total}}
		case 1:
			e = api.ProvisionCompleteEvent{Task: task, Status: status, Message: msg, Result: api.ProvisionResult{AdminPassword: &extra}, Progress: api.ProvisionProgress{Current: cur, Total: total}}
		case 2:
			e = api.ProvisionFailureEvent{Task: task, Status: status, Message: msg, Error: extra, Progress: api.ProvisionProgress{Current: cur, Total: total}}
		default:
			e = api.ProvisionState{Type: title, Tasks: []api.ProvisionTask{{ID: task, Title: title, Status: status, Message: msg, Log: &extra}}}
		}
		b, err := EncodeEvent(e)
		if err != nil {
			return
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%q is not a JSON object: %v", b, err)
		}
		var fr api.ProvisionFrame
		if err := json.Unmarshal(b, &fr); err != nil {
			t.Fatal(err)
		}
		// Invalid UTF-8 is sent as U+FFFD; the values survive otherwise.
		for _, s := range []string{task, title, status, msg, extra} {
			if !utf8.ValidString(s) {
				return
			}
		}
		switch v := e.(type) {
		case api.ProvisionProgressEvent:
			if fr.Task != v.Task || fr.Title != v.Title || fr.Status != v.Status || fr.Message != v.Message || fr.Log == nil || *fr.Log != *v.Log || *fr.Progress != v.Progress {
				t.Fatalf("round trip %+v → %s", v, b)
			}
		case api.ProvisionFailureEvent:
			var s string
			if json.Unmarshal(fr.Error, &s) != nil || s != v.Error || fr.Task != v.Task {
				t.Fatalf("round trip %+v → %s", v, b)
			}
		case api.ProvisionState:
			if fr.Type != "state" || len(fr.Tasks) != 1 || fr.Tasks[0].ID != v.Tasks[0].ID {
				t.Fatalf("round trip %+v → %s", v, b)
			}
		}
	})
}
