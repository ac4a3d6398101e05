// Package launch provisions a relay on DigitalOcean from the home app,
// without the user touching SSH: it makes an SSH key pair and a host key
// here, uploads the key, creates the droplet with the host key (cloud-init),
// connects verifying that host key (never trust on first use), uploads this
// app's relay binary, runs `portlama install --json` relaying its events,
// downloads the admin P12, adds the relay to the server registry, and
// deletes the SSH key from the account. Closing port 22 is a separate step
// the user confirms.
//
// The job's state is in provision.json (0600) after every step, so a
// failure resumes from the step that failed; a droplet that was created is
// named in every failure, with its price, until it is destroyed or the job
// finishes.
package launch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"time"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/cloud/digitalocean"
	"github.com/portlama/portlama/internal/keychain"
	"github.com/portlama/portlama/internal/servers"
	"github.com/portlama/portlama/internal/store"
)

// Steps, in order. State.Step is the next one to run.
const (
	StepKeys     = "keys"           // make the login key pair and the host key
	StepKey      = "upload-key"     // upload the login key to the account
	StepCreate   = "create-droplet" // create the droplet with the host key
	StepAddress  = "wait-address"   // wait until it is active with an address
	StepConnect  = "connect"        // SSH in, verifying the host key
	StepBinary   = "upload-binary"  // put the relay binary on it
	StepInstall  = "install"        // portlama install --json
	StepP12      = "download-p12"   // the admin P12 and its password
	StepRegister = "register"       // add the relay to the server registry
	StepCleanup  = "delete-key"     // delete the SSH key from the account
	StepDone     = "done"
)

// Steps lists the steps in order (StepDone last).
var Steps = []string{StepKeys, StepKey, StepCreate, StepAddress, StepConnect, StepBinary, StepInstall, StepP12, StepRegister, StepCleanup, StepDone}

// Images the droplet may run (the installer supports these).
var Images = []string{"debian-12-x64", "ubuntu-24-04-x64"}

// Request is what the user chose.
type Request struct {
	// Name is the droplet's name and the relay's id in the registry.
	Name   string `json:"name"`
	Region string `json:"region"`
	Size   string `json:"size"`
	// Image is one of Images; default debian-12-x64.
	Image string `json:"image"`
}

// State is provision.json.
type State struct {
	Request Request `json:"request"`
	// Step is the next step to run; StepDone when finished.
	Step string `json:"step"`
	// Error is the last failure ("" after a step succeeds).
	Error string `json:"error,omitempty"`

	PriceHourly  float64 `json:"priceHourly"`
	PriceMonthly float64 `json:"priceMonthly"`
	// HostKey is the droplet's host key (authorized_keys format): the only
	// key the SSH connection accepts.
	HostKey string `json:"hostKey,omitempty"`
	// LoginKey is the uploaded public key.
	LoginKey string `json:"loginKey,omitempty"`
	KeyID    int    `json:"keyId,omitempty"`
	// Creating is set before the create request goes out, so a job that
	// lost the answer looks the droplet up by its tag instead of making a
	// second one.
	Creating  bool   `json:"creating,omitempty"`
	DropletID int    `json:"dropletId,omitempty"`
	IP        string `json:"ip,omitempty"`
	PanelURL  string `json:"panelUrl,omitempty"`
	// BinarySHA256 is the uploaded binary's checksum, as the droplet
	// computed it.
	BinarySHA256 string `json:"binarySha256,omitempty"`
	Port22Closed bool   `json:"port22Closed,omitempty"`
	StartedAt    string `json:"startedAt"`
	UpdatedAt    string `json:"updatedAt"`
}

// Tag is the droplet's tag (how a lost create answer is recovered).
func (s State) Tag() string { return "portlama-" + s.Request.Name }

// Event is a progress report.
type Event struct {
	Step string `json:"step"`
	// Status: running, done, failed, or progress (a line of the install).
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	// Install is the installer's event (Status progress), as it sent it.
	Install *api.InstallEvent `json:"install,omitempty"`
}

// Config is what a Job needs.
type Config struct {
	// API is the DigitalOcean client with the user's token.
	API *digitalocean.Client
	// Keys holds the SSH private keys while the job runs (and the P12
	// password, through Servers).
	Keys keychain.Keychain
	// Servers is the registry the relay is added to.
	Servers *servers.Registry
	// StatePath is provision.json (~/.portlama/provision.json).
	StatePath string
	// Binary is the portlama relay binary for linux/amd64 (what droplets
	// run), uploaded to the droplet.
	Binary string
	// Dial makes the SSH connection (default: net.Dialer).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Dev passes --dev to the installer (lab and LAN addresses).
	Dev bool
	// Poll is how often the droplet's state is read (default 5s).
	Poll time.Duration
	// Boot bounds the wait for the droplet's address and its sshd
	// (default 5 minutes).
	Boot time.Duration
	Log  *slog.Logger
}

// Job runs provisioning jobs; one at a time per StatePath.
type Job struct {
	cfg Config
	doc *store.Doc[*State]
	now func() time.Time
	ssh *sshConn // the open connection, reused across steps
}

// New returns a job runner.
func New(cfg Config) *Job {
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	if cfg.Poll == 0 {
		cfg.Poll = 5 * time.Second
	}
	if cfg.Boot == 0 {
		cfg.Boot = 5 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Job{cfg: cfg, doc: store.NewDoc[*State](cfg.StatePath, 0o600), now: time.Now}
}

// ErrNoJob: nothing is being provisioned.
var ErrNoJob = errors.New("no relay is being provisioned")

// State returns the saved job (ErrNoJob when there is none).
func (j *Job) State() (State, error) {
	s, err := j.doc.Load()
	if err != nil {
		return State{}, fmt.Errorf("read the provisioning state: %w", err)
	}
	if s == nil {
		return State{}, ErrNoJob
	}
	return *s, nil
}

func (j *Job) save(s *State) error {
	s.UpdatedAt = j.now().UTC().Format(time.RFC3339)
	if err := j.doc.Save(s); err != nil {
		return fmt.Errorf("save the provisioning state: %w", err)
	}
	return nil
}

// FailedError is a step that failed. It says whether a droplet exists and
// what it costs, so nobody is left paying for one they do not know about.
type FailedError struct {
	Step string
	Err  error
	// DropletID is the droplet that exists (0: none is known).
	DropletID int
	// MaybeDroplet: the create request went out but its answer did not
	// come back; a droplet may exist.
	MaybeDroplet bool
	Name         string
	PriceHourly  float64
	PriceMonthly float64
}

func (e *FailedError) Error() string {
	msg := fmt.Sprintf("provisioning stopped at step %s: %v", e.Step, e.Err)
	switch {
	case e.DropletID != 0:
		msg += fmt.Sprintf(". The droplet %s (id %d) exists and costs $%.5f an hour ($%.2f a month): resume to carry on, or destroy it", e.Name, e.DropletID, e.PriceHourly, e.PriceMonthly)
	case e.MaybeDroplet:
		msg += fmt.Sprintf(". The droplet %s may have been created (the answer was lost); it would cost $%.5f an hour ($%.2f a month): resume to find it and carry on, or destroy it", e.Name, e.PriceHourly, e.PriceMonthly)
	default:
		msg += ". No droplet was created: resume to try again, or cancel"
	}
	return msg
}

func (e *FailedError) Unwrap() error { return e.Err }

// Start begins provisioning req. It refuses while another job is saved
// (resume or destroy it first).
func (j *Job) Start(ctx context.Context, req Request, progress func(Event)) (State, error) {
	if s, err := j.State(); err == nil {
		return s, savedJobError(s)
	} else if !errors.Is(err, ErrNoJob) {
		return State{}, err
	}
	if req.Image == "" {
		req.Image = Images[0]
	}
	if err := agent.ValidateLabel(req.Name); err != nil {
		return State{}, err
	}
	if !slices.Contains(Images, req.Image) {
		return State{}, fmt.Errorf("image %q is not supported: use one of %v", req.Image, Images)
	}
	if _, err := os.Stat(j.cfg.Binary); err != nil {
		return State{}, fmt.Errorf("the relay binary to upload is missing: %w", err)
	}
	size, err := j.checkChoice(ctx, req)
	if err != nil {
		return State{}, err
	}
	now := j.now().UTC().Format(time.RFC3339)
	s := &State{Request: req, Step: Steps[0], PriceHourly: size.PriceHourly, PriceMonthly: size.PriceMonthly, StartedAt: now}
	if err := j.save(s); err != nil {
		return State{}, err
	}
	return j.run(ctx, s, progress)
}

// JobSavedError refuses a new job while one is saved: its keys and
// droplet would be forgotten.
type JobSavedError struct{ State State }

func (e *JobSavedError) Error() string {
	if e.State.Step == StepDone {
		return fmt.Sprintf("relay %s is provisioned but not dismissed yet: dismiss it (or destroy it) first", e.State.Request.Name)
	}
	return fmt.Sprintf("a relay (%s) is already being provisioned, stopped at step %s: resume it or destroy it first", e.State.Request.Name, e.State.Step)
}

func savedJobError(s State) error { return &JobSavedError{State: s} }

// checkChoice checks that the size exists, is available and is offered in
// the region, and returns it (for its price).
func (j *Job) checkChoice(ctx context.Context, req Request) (digitalocean.Size, error) {
	sizes, err := j.cfg.API.Sizes(ctx)
	if err != nil {
		return digitalocean.Size{}, fmt.Errorf("list droplet sizes: %w", err)
	}
	for _, sz := range sizes {
		if sz.Slug != req.Size {
			continue
		}
		if !sz.Available || !slices.Contains(sz.Regions, req.Region) {
			return sz, fmt.Errorf("size %s is not available in region %s: choose another size or region", req.Size, req.Region)
		}
		return sz, nil
	}
	return digitalocean.Size{}, fmt.Errorf("DigitalOcean has no droplet size %q", req.Size)
}

// Resume runs the saved job from the step that failed.
func (j *Job) Resume(ctx context.Context, progress func(Event)) (State, error) {
	s, err := j.State()
	if err != nil {
		return s, err
	}
	if s.Step == StepDone {
		return s, nil
	}
	return j.run(ctx, &s, progress)
}

func (j *Job) run(ctx context.Context, s *State, progress func(Event)) (State, error) {
	if progress == nil {
		progress = func(Event) {}
	}
	defer j.closeSSH()
	for s.Step != StepDone {
		step := s.Step
		progress(Event{Step: step, Status: "running"})
		msg, err := j.runStep(ctx, s, step, progress)
		if err != nil {
			s.Error = err.Error()
			if serr := j.save(s); serr != nil {
				j.cfg.Log.Error("save the provisioning state", "err", serr)
			}
			progress(Event{Step: step, Status: "failed", Message: err.Error()})
			j.closeSSH()
			return *s, &FailedError{Step: step, Err: err, DropletID: s.DropletID, MaybeDroplet: s.Creating && s.DropletID == 0, Name: s.Request.Name, PriceHourly: s.PriceHourly, PriceMonthly: s.PriceMonthly}
		}
		s.Error = ""
		s.Step = Steps[slices.Index(Steps, step)+1]
		if err := j.save(s); err != nil {
			return *s, err
		}
		progress(Event{Step: step, Status: "done", Message: msg})
	}
	return *s, nil
}

func (j *Job) runStep(ctx context.Context, s *State, step string, progress func(Event)) (string, error) {
	switch step {
	case StepKeys:
		return j.makeKeys(s)
	case StepKey:
		return j.uploadKey(ctx, s)
	case StepCreate:
		return j.createDroplet(ctx, s)
	case StepAddress:
		return j.waitAddress(ctx, s)
	case StepConnect:
		if _, err := j.conn(ctx, s); err != nil {
			return "", err
		}
		return "connected to " + s.IP + ", host key verified", nil
	case StepBinary:
		return j.uploadBinary(ctx, s)
	case StepInstall:
		return j.install(ctx, s, progress)
	case StepP12:
		return j.downloadP12(ctx, s)
	case StepRegister:
		return j.register(s)
	case StepCleanup:
		if err := j.cfg.API.DeleteKey(ctx, s.KeyID); err != nil {
			return "", fmt.Errorf("delete the SSH key from the DigitalOcean account: %w", err)
		}
		// The login key stays in the keychain until port 22 is closed or
		// the droplet destroyed: both need one more SSH connection.
		_ = j.cfg.Keys.Delete(secretKey(s.Request.Name, "host-key"))
		return "SSH key deleted from the DigitalOcean account", nil
	}
	return "", fmt.Errorf("unknown step %q", step)
}

// secretKey names a key of the job in the keychain.
func secretKey(name, what string) string { return "provision/" + name + "/" + what }

func (j *Job) makeKeys(s *State) (string, error) {
	login, err := digitalocean.NewKeyPair("portlama-" + s.Request.Name)
	if err != nil {
		return "", err
	}
	host, err := digitalocean.NewKeyPair("root@" + s.Request.Name)
	if err != nil {
		return "", err
	}
	if err := j.cfg.Keys.Set(secretKey(s.Request.Name, "ssh-key"), string(login.PEM)); err != nil {
		return "", fmt.Errorf("keep the SSH key in the keychain: %w", err)
	}
	if err := j.cfg.Keys.Set(secretKey(s.Request.Name, "host-key"), string(host.PEM)); err != nil {
		return "", fmt.Errorf("keep the host key in the keychain: %w", err)
	}
	s.LoginKey, s.HostKey = login.AuthorizedKey, host.AuthorizedKey
	return "SSH key and host key made on this machine", nil
}

func (j *Job) uploadKey(ctx context.Context, s *State) (string, error) {
	if s.KeyID != 0 {
		return "already uploaded", nil
	}
	k, err := j.cfg.API.CreateKey(ctx, "portlama-"+s.Request.Name, s.LoginKey)
	if err != nil {
		return "", fmt.Errorf("upload the SSH key: %w", err)
	}
	s.KeyID = k.ID
	return fmt.Sprintf("SSH key %d uploaded", k.ID), nil
}

func (j *Job) createDroplet(ctx context.Context, s *State) (string, error) {
	if s.DropletID != 0 {
		return "already created", nil
	}
	if s.Creating {
		// The request went out before; its answer may have been lost.
		ds, err := j.cfg.API.DropletsByTag(ctx, s.Tag())
		if err != nil {
			return "", fmt.Errorf("look for a droplet created before: %w", err)
		}
		if len(ds) > 0 {
			s.DropletID = ds[0].ID
			return fmt.Sprintf("droplet %d found (created before)", s.DropletID), nil
		}
	}
	hostPEM, err := j.cfg.Keys.Get(secretKey(s.Request.Name, "host-key"))
	if err != nil {
		return "", fmt.Errorf("read the host key from the keychain: %w", err)
	}
	// CloudInit needs the key's PEM and public half only.
	host := &digitalocean.KeyPair{PEM: []byte(hostPEM), AuthorizedKey: s.HostKey}
	s.Creating = true
	if err := j.save(s); err != nil {
		return "", err
	}
	d, err := j.cfg.API.CreateDroplet(ctx, digitalocean.CreateDropletRequest{
		Name: s.Request.Name, Region: s.Request.Region, Size: s.Request.Size, Image: s.Request.Image,
		SSHKeys: []int{s.KeyID}, UserData: digitalocean.CloudInit(host), Tags: []string{s.Tag()},
	})
	if err != nil {
		return "", fmt.Errorf("create the droplet: %w", err)
	}
	s.DropletID = d.ID
	return fmt.Sprintf("droplet %d created in %s ($%.2f a month)", d.ID, s.Request.Region, s.PriceMonthly), nil
}

func (j *Job) waitAddress(ctx context.Context, s *State) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, j.cfg.Boot)
	defer cancel()
	d, err := j.cfg.API.WaitActive(ctx, s.DropletID, j.cfg.Poll)
	if err != nil {
		return "", fmt.Errorf("wait for the droplet to start: %w", err)
	}
	s.IP = d.PublicIPv4()
	return "droplet active at " + s.IP, nil
}

// Destroy deletes the droplet and the SSH key from the account, the job's
// keys from the keychain, and the saved state. The relay stays in the
// server registry if it was added (remove it there).
func (j *Job) Destroy(ctx context.Context) error {
	s, err := j.State()
	if err != nil {
		return err
	}
	if s.DropletID == 0 && s.Creating {
		ds, err := j.cfg.API.DropletsByTag(ctx, s.Tag())
		if err != nil {
			return fmt.Errorf("look for the droplet to destroy: %w", err)
		}
		for _, d := range ds {
			if err := j.cfg.API.DeleteDroplet(ctx, d.ID); err != nil {
				return fmt.Errorf("destroy droplet %d: %w", d.ID, err)
			}
		}
	}
	if s.DropletID != 0 {
		if err := j.cfg.API.DeleteDroplet(ctx, s.DropletID); err != nil {
			return fmt.Errorf("destroy droplet %d (it still exists and costs $%.5f an hour): %w", s.DropletID, s.PriceHourly, err)
		}
	}
	return j.forget(ctx, s)
}

// Finish forgets a finished job: the SSH key leaves the keychain (port 22
// stays as it is).
func (j *Job) Finish(ctx context.Context) error {
	s, err := j.State()
	if err != nil {
		return err
	}
	if s.Step != StepDone {
		return fmt.Errorf("the job is not finished (stopped at step %s): resume or destroy it", s.Step)
	}
	return j.forget(ctx, s)
}

func (j *Job) forget(ctx context.Context, s State) error {
	if s.KeyID != 0 {
		if err := j.cfg.API.DeleteKey(ctx, s.KeyID); err != nil {
			return fmt.Errorf("delete the SSH key from the DigitalOcean account: %w", err)
		}
	}
	for _, k := range []string{"ssh-key", "host-key"} {
		if err := j.cfg.Keys.Delete(secretKey(s.Request.Name, k)); err != nil && !errors.Is(err, keychain.ErrNotFound) {
			return fmt.Errorf("delete the job's key from the keychain: %w", err)
		}
	}
	if err := os.Remove(j.cfg.StatePath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the provisioning state: %w", err)
	}
	return nil
}
