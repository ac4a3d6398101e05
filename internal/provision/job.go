package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/config"
	"github.com/portlama/portlama/internal/errkind"
)

// Task is one idempotent provisioning step: running it again after a
// failure, or after success, brings the relay to the same state.
type Task struct {
	ID    string
	Title string
	// Run does the work and returns a short message for the user and an
	// optional log excerpt.
	Run func(ctx context.Context, r *Run) (message string, log *string, err error)
}

// Run is the state shared by the tasks of one run (the admin password
// made by start-auth-server, read by finalize).
type Run struct {
	AdminPassword string
	Result        api.ProvisionResult
}

// PasswordTTL is how long after the job ends the admin password stays in
// memory (docs/api.md, "Provisioning").
const PasswordTTL = 5 * time.Second

// Job runs the onboarding tasks in the background, one run at a time,
// and publishes their progress to subscribers (the WebSocket). State
// changes are persisted in panel.json: PROVISIONING before the first task
// runs, COMPLETED by finalize.
type Job struct {
	tasks []Task
	panel *config.PanelStore
	log   *slog.Logger
	ttl   time.Duration

	mu      sync.Mutex
	running bool
	state   []api.ProvisionTask
	err     *api.ProvisionTaskError
	result  *api.ProvisionResult
	subs    map[int]chan []byte
	nextSub int
	done    chan struct{} // closed when the current run ends
	gen     int           // run generation, for the password wipe
}

// NewJob returns a job over tasks.
func NewJob(tasks []Task, panel *config.PanelStore, log *slog.Logger) *Job {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	j := &Job{tasks: tasks, panel: panel, log: log, ttl: PasswordTTL, subs: map[int]chan []byte{}}
	j.resetState()
	return j
}

func (j *Job) resetState() {
	j.state = make([]api.ProvisionTask, len(j.tasks))
	for i, t := range j.tasks {
		j.state[i] = api.ProvisionTask{ID: t.ID, Title: t.Title, Status: api.TaskPending}
	}
	j.err, j.result = nil, nil
}

// Start persists PROVISIONING and starts a run. It refuses with
// errkind.Conflict before DNS is verified or while a run is active, and
// with errkind.Gone once onboarding is completed.
func (j *Job) Start() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.running {
		return errkind.New(errkind.Conflict, api.MsgProvisionBusy)
	}
	_, err := j.panel.Update(func(c *config.PanelConfig) error {
		switch c.Onboarding.Status {
		case config.StatusDNSReady, config.StatusProvisioning:
			c.Onboarding.Status = config.StatusProvisioning
			return nil
		case config.StatusCompleted:
			return errkind.New(errkind.Gone, "Onboarding already completed")
		default:
			return errkind.New(errkind.Conflict, api.MsgNeedDNS)
		}
	})
	if err != nil {
		return err
	}
	j.running = true
	j.resetState()
	j.gen++
	j.done = make(chan struct{})
	go j.run(j.gen, j.done)
	return nil
}

// Done returns a channel closed when the current (or last) run ends; nil
// before the first run.
func (j *Job) Done() <-chan struct{} {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.done
}

func (j *Job) run(gen int, done chan struct{}) {
	// The run outlives the request that started it.
	ctx := context.Background()
	r := &Run{}
	total := len(j.tasks)
	failed := false
	for i, t := range j.tasks {
		j.update(func() {
			j.state[i].Status = api.TaskRunning
			j.state[i].Message = t.Title + "…"
		}, api.ProvisionProgressEvent{Task: t.ID, Title: t.Title, Status: api.TaskRunning, Message: t.Title + "…",
			Progress: api.ProvisionProgress{Current: i + 1, Total: total}})
		msg, log, err := runTask(ctx, t, r)
		if err != nil {
			j.log.Warn("provisioning task failed", "task", t.ID, "err", err)
			text := err.Error()
			j.update(func() {
				j.state[i].Status, j.state[i].Message, j.state[i].Log = api.TaskError, text, log
				j.err = &api.ProvisionTaskError{Task: t.ID, Message: text}
			}, api.ProvisionFailureEvent{Task: t.ID, Status: api.TaskError, Message: "Failed: " + t.Title, Error: text,
				Progress: api.ProvisionProgress{Current: i, Total: total}})
			failed = true
			break
		}
		j.log.Info("provisioning task done", "task", t.ID, "message", msg)
		j.update(func() {
			j.state[i].Status, j.state[i].Message, j.state[i].Log = api.TaskDone, msg, log
		}, api.ProvisionProgressEvent{Task: t.ID, Title: t.Title, Status: api.TaskDone, Message: msg, Log: log,
			Progress: api.ProvisionProgress{Current: i + 1, Total: total}})
	}
	if !failed {
		res := r.Result
		pw := r.AdminPassword
		res.AdminPassword = &pw
		j.update(func() { j.result = &res }, api.ProvisionCompleteEvent{Task: api.TaskComplete, Status: api.TaskDone,
			Message: api.MsgProvisioned, Result: res, Progress: api.ProvisionProgress{Current: total, Total: total}})
	}
	r.AdminPassword = ""
	j.mu.Lock()
	j.running = false
	j.mu.Unlock()
	close(done)
	// The password stays only for the client that watches the run end.
	time.AfterFunc(j.ttl, func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.gen == gen && j.result != nil {
			res := *j.result
			res.AdminPassword = nil
			j.result = &res
		}
	})
}

// runTask runs t, turning a panic into an error so a run always ends.
func runTask(ctx context.Context, t Task, r *Run) (msg string, log *string, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error in %s: %v", t.ID, p)
		}
	}()
	return t.Run(ctx, r)
}

// update applies change under the lock and sends the encoded event to
// every subscriber; a subscriber that cannot keep up loses the frame.
func (j *Job) update(change func(), event any) {
	frame, err := EncodeEvent(event)
	if err != nil {
		j.log.Error("encode provisioning event", "err", err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	change()
	if frame == nil {
		return
	}
	for _, ch := range j.subs {
		select {
		case ch <- frame:
		default:
		}
	}
}

// Snapshot returns the state frame.
func (j *Job) Snapshot() api.ProvisionState {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.snapshotLocked()
}

func (j *Job) snapshotLocked() api.ProvisionState {
	st := api.ProvisionState{Type: api.FrameState, IsRunning: j.running, Tasks: append([]api.ProvisionTask(nil), j.state...), Error: j.err}
	if j.result != nil {
		r := *j.result
		st.Result = &r
	}
	return st
}

// Subscribe returns the encoded snapshot and a channel of the frames that
// follow it, with nothing lost in between; cancel ends the subscription.
func (j *Job) Subscribe() (snapshot []byte, frames <-chan []byte, cancel func(), err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	snap, err := EncodeEvent(j.snapshotLocked())
	if err != nil {
		return nil, nil, nil, err
	}
	ch := make(chan []byte, 64)
	id := j.nextSub
	j.nextSub++
	j.subs[id] = ch
	return snap, ch, func() {
		j.mu.Lock()
		defer j.mu.Unlock()
		delete(j.subs, id)
	}, nil
}

// EncodeEvent encodes one frame of the provisioning WebSocket
// (docs/api.md, "Provisioning"): api.ProvisionState, api.ProvisionProgressEvent,
// api.ProvisionCompleteEvent or api.ProvisionFailureEvent. It refuses
// anything else and frames that break the contract's shape (an unknown
// status, progress out of range), so a bug never reaches a client.
func EncodeEvent(e any) ([]byte, error) {
	switch v := e.(type) {
	case api.ProvisionState:
		if v.Type != api.FrameState {
			return nil, fmt.Errorf("snapshot frame type %q", v.Type)
		}
		if v.Tasks == nil {
			v.Tasks = []api.ProvisionTask{}
		}
		for _, t := range v.Tasks {
			if !validStatus(t.Status, api.TaskPending, api.TaskRunning, api.TaskDone, api.TaskError) {
				return nil, fmt.Errorf("task %q status %q", t.ID, t.Status)
			}
		}
		return json.Marshal(v)
	case api.ProvisionProgressEvent:
		if !validStatus(v.Status, api.TaskRunning, api.TaskDone) || v.Task == "" {
			return nil, fmt.Errorf("progress frame for %q status %q", v.Task, v.Status)
		}
		if err := checkProgress(v.Progress); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	case api.ProvisionCompleteEvent:
		if v.Task != api.TaskComplete || v.Status != api.TaskDone {
			return nil, fmt.Errorf("completion frame task %q status %q", v.Task, v.Status)
		}
		if err := checkProgress(v.Progress); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	case api.ProvisionFailureEvent:
		if v.Status != api.TaskError || v.Task == "" {
			return nil, fmt.Errorf("failure frame task %q status %q", v.Task, v.Status)
		}
		if err := checkProgress(v.Progress); err != nil {
			return nil, err
		}
		return json.Marshal(v)
	}
	return nil, fmt.Errorf("not a provisioning frame: %T", e)
}

func validStatus(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

func checkProgress(p api.ProvisionProgress) error {
	if p.Total <= 0 || p.Current < 0 || p.Current > p.Total {
		return fmt.Errorf("progress %d/%d out of range", p.Current, p.Total)
	}
	return nil
}
