package launch

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/servers"
)

// Where the binary goes on the droplet before the installer copies itself
// to /usr/local/bin.
const remoteBinary = "/root/portlama-provision"

// The SSH commands. sshd runs them through the login shell, so they are
// constants: nothing from the user or the API reaches them.
const (
	cmdArch   = "uname -m"
	cmdUpload = "umask 077 && cat > " + remoteBinary + ".part && chmod 755 " + remoteBinary + ".part && mv " + remoteBinary + ".part " + remoteBinary + " && sha256sum " + remoteBinary
	// flock: an install left running by a dropped connection finishes (or
	// dies on its closed output) before the resumed one starts.
	cmdInstall    = "flock /run/portlama-provision.lock " + remoteBinary + " install --json"
	cmdInstallDev = cmdInstall + " --dev"
	cmdP12        = "base64 -w0 /etc/portlama/pki/client.p12"
	cmdP12Pass    = "cat /etc/portlama/pki/.p12-password"
	cmdClose22    = "ufw delete allow 22/tcp"
)

type sshConn struct {
	client *ssh.Client
}

func keyPairFromPEM(pemText string) (ssh.Signer, error) {
	s, err := ssh.ParsePrivateKey([]byte(pemText))
	if err != nil {
		return nil, fmt.Errorf("read an SSH key from the keychain: %w", err)
	}
	return s, nil
}

// HostKeyMismatchError: the droplet showed another host key than the one
// made for it. Someone may be in the middle; nothing is sent.
type HostKeyMismatchError struct {
	Addr string
	Got  string
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("the server at %s showed host key %s, not the one made for this droplet: the connection may be intercepted, so nothing was sent (destroy the droplet if this persists)", e.Addr, e.Got)
}

// conn returns the SSH connection, dialling it when there is none. The host
// key must be the one made for the droplet. sshd may still be starting
// after the droplet is active: refused or reset connections are retried
// until Boot, a wrong host key is not.
func (j *Job) conn(ctx context.Context, s *State) (*ssh.Client, error) {
	if j.ssh != nil {
		return j.ssh.client, nil
	}
	pemText, err := j.cfg.Keys.Get(secretKey(s.Request.Name, "ssh-key"))
	if err != nil {
		return nil, fmt.Errorf("read the SSH key from the keychain: %w", err)
	}
	signer, err := keyPairFromPEM(pemText)
	if err != nil {
		return nil, err
	}
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostKey))
	if err != nil {
		return nil, fmt.Errorf("read the droplet's host key: %w", err)
	}
	addr := net.JoinHostPort(s.IP, "22")
	cfg := &ssh.ClientConfig{
		User: "root",
		Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if !bytes.Equal(key.Marshal(), hostKey.Marshal()) {
				return &HostKeyMismatchError{Addr: addr, Got: ssh.FingerprintSHA256(key)}
			}
			return nil
		},
		HostKeyAlgorithms: []string{hostKey.Type()},
		Timeout:           20 * time.Second,
	}
	ctx, cancel := context.WithTimeout(ctx, j.cfg.Boot)
	defer cancel()
	for {
		c, err := j.dialSSH(ctx, addr, cfg)
		if err == nil {
			j.ssh = &sshConn{client: c}
			return c, nil
		}
		var mm *HostKeyMismatchError
		if errors.As(err, &mm) {
			return nil, mm
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to the droplet over SSH: %w", err)
		case <-time.After(2 * time.Second):
		}
	}
}

func (j *Job) dialSSH(ctx context.Context, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	raw, err := j.cfg.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// The handshake honours ctx through the connection's deadline.
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	cc, chans, reqs, err := ssh.NewClientConn(raw, addr, cfg)
	if err != nil {
		raw.Close()
		return nil, err
	}
	raw.SetDeadline(time.Time{})
	return ssh.NewClient(cc, chans, reqs), nil
}

func (j *Job) closeSSH() {
	if j.ssh != nil {
		j.ssh.client.Close()
		j.ssh = nil
	}
}

// runSSH runs cmd on the droplet with stdin, returning stdout; stdout lines
// go to onLine when it is set. ctx ending closes the session.
func (j *Job) runSSH(ctx context.Context, s *State, cmd string, stdin io.Reader, onLine func([]byte)) ([]byte, error) {
	c, err := j.conn(ctx, s)
	if err != nil {
		return nil, err
	}
	sess, err := c.NewSession()
	if err != nil {
		j.closeSSH()
		return nil, fmt.Errorf("open an SSH session: %w", err)
	}
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	sess.Stdin = stdin
	var stderr bytes.Buffer
	sess.Stderr = &stderr
	out, err := sess.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := sess.Start(cmd); err != nil {
		return nil, fmt.Errorf("run %q on the droplet: %w", cmd, err)
	}
	var all bytes.Buffer
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		all.Write(sc.Bytes())
		all.WriteByte('\n')
		if onLine != nil {
			onLine(sc.Bytes())
		}
	}
	err = sess.Wait()
	if err != nil {
		var exit *ssh.ExitError
		if ctx.Err() != nil {
			j.closeSSH()
			return all.Bytes(), ctx.Err()
		}
		if !errors.As(err, &exit) {
			// The connection is gone (ExitMissingError or I/O): dial again
			// on the next step.
			j.closeSSH()
			return all.Bytes(), fmt.Errorf("the SSH connection to the droplet was lost (%v)", err)
		}
		return all.Bytes(), fmt.Errorf("%q on the droplet exited with status %d: %s", cmd, exit.ExitStatus(), strings.TrimSpace(stderr.String()))
	}
	return all.Bytes(), nil
}

func (j *Job) uploadBinary(ctx context.Context, s *State) (string, error) {
	arch, err := j.runSSH(ctx, s, cmdArch, nil, nil)
	if err != nil {
		return "", err
	}
	if a := strings.TrimSpace(string(arch)); a != "x86_64" {
		return "", fmt.Errorf("the droplet runs on %s; this app carries the relay for x86_64 only", a)
	}
	f, err := os.Open(j.cfg.Binary)
	if err != nil {
		return "", fmt.Errorf("open the relay binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	out, err := j.runSSH(ctx, s, cmdUpload, io.TeeReader(f, h), nil)
	if err != nil {
		return "", fmt.Errorf("upload the relay binary: %w", err)
	}
	want := hex.EncodeToString(h.Sum(nil))
	got, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if got != want {
		return "", fmt.Errorf("the relay binary arrived damaged (sha256 %s on the droplet, %s here): resume to upload it again", got, want)
	}
	s.BinarySHA256 = got
	return "relay binary uploaded, sha256 " + got[:12] + "…", nil
}

func (j *Job) install(ctx context.Context, s *State, progress func(Event)) (string, error) {
	cmd := cmdInstall
	if j.cfg.Dev {
		cmd = cmdInstallDev
	}
	var failed []string
	_, err := j.runSSH(ctx, s, cmd, nil, func(line []byte) {
		var e api.InstallEvent
		if json.Unmarshal(line, &e) != nil {
			progress(Event{Step: StepInstall, Status: "progress", Message: string(line)})
			return
		}
		if e.Status == api.InstallFailed {
			failed = append(failed, e.Task+": "+e.Error)
		}
		if e.Status == api.InstallSummary && e.Summary != nil {
			s.PanelURL = e.Summary.PanelURL
		}
		progress(Event{Step: StepInstall, Status: "progress", Install: &e})
	})
	if err != nil {
		if len(failed) > 0 {
			return "", fmt.Errorf("portlama install failed (%s): resume to run it again", strings.Join(failed, "; "))
		}
		return "", fmt.Errorf("portlama install did not finish: %w", err)
	}
	if s.PanelURL == "" {
		return "", errors.New("portlama install finished without its summary (no panel address)")
	}
	return "relay installed, panel at " + s.PanelURL, nil
}

func (j *Job) downloadP12(ctx context.Context, s *State) (string, error) {
	b64, err := j.runSSH(ctx, s, cmdP12, nil, nil)
	if err != nil {
		return "", fmt.Errorf("download the admin P12: %w", err)
	}
	pw, err := j.runSSH(ctx, s, cmdP12Pass, nil, nil)
	if err != nil {
		return "", fmt.Errorf("download the admin P12 password: %w", err)
	}
	// Kept in the keychain between this step and the next, so a failure
	// in between does not need the droplet again.
	if err := j.cfg.Keys.Set(secretKey(s.Request.Name, "p12"), strings.TrimSpace(string(b64))); err != nil {
		return "", fmt.Errorf("keep the admin P12 in the keychain: %w", err)
	}
	if err := j.cfg.Keys.Set(secretKey(s.Request.Name, "p12-password"), strings.TrimSpace(string(pw))); err != nil {
		return "", fmt.Errorf("keep the P12 password in the keychain: %w", err)
	}
	return "admin certificate downloaded", nil
}

func (j *Job) register(s *State) (string, error) {
	name := s.Request.Name
	if f, err := j.cfg.Servers.List(); err == nil {
		for _, sv := range f.Servers {
			if sv.ID == name && sv.Kind == servers.KindAdmin && sv.PanelURL == s.PanelURL {
				return "already in the server registry", nil
			}
		}
	}
	b64, err := j.cfg.Keys.Get(secretKey(name, "p12"))
	if err != nil {
		return "", fmt.Errorf("read the admin P12 from the keychain: %w", err)
	}
	pw, err := j.cfg.Keys.Get(secretKey(name, "p12-password"))
	if err != nil {
		return "", fmt.Errorf("read the P12 password from the keychain: %w", err)
	}
	p12, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "", fmt.Errorf("the downloaded P12 is damaged: %w", err)
	}
	if _, err := j.cfg.Servers.ImportP12(name, s.PanelURL, p12, pw); err != nil {
		return "", fmt.Errorf("add the relay to the server registry: %w", err)
	}
	_ = j.cfg.Keys.Delete(secretKey(name, "p12"))
	_ = j.cfg.Keys.Delete(secretKey(name, "p12-password"))
	return "relay " + name + " added to the server registry", nil
}

// ClosePort22 removes the firewall's SSH rule on the finished relay, after
// the user confirmed it: the relay is then managed from its panel only
// (running `portlama install` again, from the provider's console, opens it
// again). The SSH connection it runs over stays up (ufw keeps established
// connections).
func (j *Job) ClosePort22(ctx context.Context) (State, error) {
	s, err := j.State()
	if err != nil {
		return s, err
	}
	if s.Step != StepDone {
		return s, fmt.Errorf("the relay is not provisioned yet (stopped at step %s)", s.Step)
	}
	defer j.closeSSH()
	if _, err := j.runSSH(ctx, &s, cmdClose22, nil, nil); err != nil {
		return s, fmt.Errorf("close port 22 on the relay's firewall: %w", err)
	}
	s.Port22Closed = true
	return s, j.save(&s)
}
