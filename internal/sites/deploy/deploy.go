// Package deploy uploads a built directory to a static site on the relay,
// the logic of `portlama-agent sites deploy`: it compares the directory
// with the site's files (size, then SHA-256), uploads only what differs,
// in a few streamed requests, and with Delete removes what the directory
// no longer has. Files the relay would refuse (hidden files, extensions
// sites may not have) are reported and skipped; a file too large for an
// upload stops the deploy before anything is sent.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/panelclient"
	"github.com/portlama/portlama/internal/sites/sitepath"
)

// Event is one step of a deploy; `sites deploy --json` prints each as a
// line of JSON.
type Event struct {
	// Kind: "plan" (Upload, Delete, Unchanged, Skipped, Bytes), "skip"
	// (Path, Message), "upload" (Path, Bytes: a file is being sent),
	// "progress" (Sent, Bytes: of the whole deploy), "delete" (Path),
	// "wait" (Message: the relay's rate limit), "warning" (Message),
	// "done" (Upload, Delete, Unchanged, Skipped, Bytes).
	Kind      string `json:"event"`
	Path      string `json:"path,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
	Sent      int64  `json:"sent,omitempty"`
	Upload    int    `json:"upload,omitempty"`
	Delete    int    `json:"delete,omitempty"`
	Unchanged int    `json:"unchanged,omitempty"`
	Skipped   int    `json:"skipped,omitempty"`
	Message   string `json:"message,omitempty"`
}

// Options configure a deploy.
type Options struct {
	// Delete removes the site's files that Dir does not have.
	Delete bool
	// Events receives every step; nil discards them.
	Events func(Event)
	// BatchBytes and BatchFiles bound one upload request (defaults 32 MiB
	// and 200 files): few requests for a small site, bounded requests for
	// a large one (the relay admits 100 requests a minute).
	BatchBytes int64
	BatchFiles int
	// RetryWait is how long to wait after the relay's rate limit before
	// trying again (default one minute); at most maxRetries waits.
	RetryWait time.Duration
}

const maxRetries = 3

// Result counts what a deploy did.
type Result struct {
	Uploaded, Deleted, Unchanged, Skipped int
	Bytes                                 int64 // bytes uploaded
}

type localFile struct {
	rel  string // slash path below the directory
	abs  string
	size int64
}

// Deploy makes the site with id match dir.
func Deploy(ctx context.Context, c *panelclient.Client, siteID, dir string, o Options) (Result, error) {
	if o.Events == nil {
		o.Events = func(Event) {}
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 32 << 20
	}
	if o.BatchFiles <= 0 {
		o.BatchFiles = 200
	}
	if o.RetryWait <= 0 {
		o.RetryWait = time.Minute
	}
	local, skipped, err := scan(dir, o.Events)
	if err != nil {
		return Result{}, err
	}
	var remote api.SiteFileList
	err = retry(ctx, o, func() error {
		var err error
		remote, err = c.SiteFiles(ctx, siteID, "", true)
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("list the site's files: %w", err)
	}
	remoteFiles := map[string]api.SiteFile{}
	for _, f := range remote.Files {
		remoteFiles[f.RelativePath] = f
	}

	res := Result{Skipped: skipped}
	var upload []localFile
	for _, f := range local {
		r, ok := remoteFiles[f.rel]
		if ok && r.Type == api.SiteFileRegular && r.Size == f.size {
			sum, err := fileSHA256(f.abs)
			if err != nil {
				return Result{}, err
			}
			if sum == r.SHA256 {
				res.Unchanged++
				continue
			}
		}
		upload = append(upload, f)
		res.Bytes += f.size
	}
	var deletes []string
	if o.Delete {
		deletes = toDelete(local, remote.Files)
	}
	o.Events(Event{Kind: "plan", Upload: len(upload), Delete: len(deletes), Unchanged: res.Unchanged, Skipped: skipped, Bytes: res.Bytes})

	var sent int64
	for _, batch := range batches(upload, o.BatchBytes, o.BatchFiles) {
		if err := uploadBatch(ctx, c, siteID, batch, &sent, res.Bytes, o); err != nil {
			return res, err
		}
		res.Uploaded += len(batch)
	}
	for _, p := range deletes {
		o.Events(Event{Kind: "delete", Path: p})
		err := retry(ctx, o, func() error { return c.DeleteSiteFile(ctx, siteID, p) })
		if err != nil && !errors.Is(err, &api.Error{Status: http.StatusNotFound, Message: "File not found"}) {
			return res, fmt.Errorf("delete %s: %w", p, err)
		}
		res.Deleted++
	}
	o.Events(Event{Kind: "done", Upload: res.Uploaded, Delete: res.Deleted, Unchanged: res.Unchanged, Skipped: res.Skipped, Bytes: res.Bytes})
	return res, nil
}

// scan lists the regular files below dir that the relay accepts; the
// others are reported as skipped. A file larger than an upload may be is
// an error.
func scan(dir string, events func(Event)) ([]localFile, int, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, 0, err
	}
	if !fi.IsDir() {
		return nil, 0, fmt.Errorf("%s is not a directory", dir)
	}
	var out []localFile
	skipped := 0
	skip := func(rel, why string) {
		skipped++
		events(Event{Kind: "skip", Path: rel, Message: why})
	}
	var tooLarge []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if _, err := sitepath.Clean(rel, false); err != nil {
				skip(rel+"/", errkind.Message(err))
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			skip(rel, "not a regular file (links are not followed)")
			return nil
		}
		if _, err := sitepath.Upload(".", rel); err != nil {
			skip(rel, errkind.Message(err))
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Size() > sitepath.MaxFileSize {
			tooLarge = append(tooLarge, rel)
		}
		out = append(out, localFile{rel: rel, abs: p, size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", dir, err)
	}
	if len(tooLarge) > 0 {
		return nil, 0, fmt.Errorf("larger than the relay accepts per file (50 MiB): %s", strings.Join(tooLarge, ", "))
	}
	return out, skipped, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sum, err := sitepath.SHA256(f)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return sum, nil
}

// toDelete returns the remote paths the directory no longer has: a whole
// directory when nothing below it stays, else the files.
func toDelete(local []localFile, remote []api.SiteFile) []string {
	keep := map[string]bool{} // local files and their parent directories
	for _, f := range local {
		keep[f.rel] = true
		for d := path.Dir(f.rel); d != "."; d = path.Dir(d) {
			keep[d] = true
		}
	}
	var out []string
	var removed []string // directories removed whole
	sorted := slices.Clone(remote)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].RelativePath < sorted[j].RelativePath })
	for _, r := range sorted {
		if keep[r.RelativePath] || under(r.RelativePath, removed) {
			continue
		}
		out = append(out, r.RelativePath)
		if r.Type == api.SiteFileDirectory {
			removed = append(removed, r.RelativePath)
		}
	}
	return out
}

func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func batches(files []localFile, maxBytes int64, maxFiles int) [][]localFile {
	var out [][]localFile
	var cur []localFile
	var size int64
	for _, f := range files {
		if len(cur) > 0 && (size+f.size > maxBytes || len(cur) >= maxFiles) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, f)
		size += f.size
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func uploadBatch(ctx context.Context, c *panelclient.Client, siteID string, batch []localFile, sent *int64, total int64, o Options) error {
	start := *sent
	var files []panelclient.UploadFile
	for _, f := range batch {
		files = append(files, panelclient.UploadFile{Path: f.rel, Open: func() (io.ReadCloser, error) {
			o.Events(Event{Kind: "upload", Path: f.rel, Bytes: f.size})
			return os.Open(f.abs)
		}})
	}
	lastReport := start
	return retry(ctx, o, func() error {
		res, err := c.UploadSiteFiles(ctx, siteID, ".", files, func(n int64) {
			*sent = start + n
			if *sent-lastReport >= 1<<20 || *sent == total {
				lastReport = *sent
				o.Events(Event{Kind: "progress", Sent: *sent, Bytes: total})
			}
		})
		if err != nil {
			*sent = start
			return fmt.Errorf("upload: %w", err)
		}
		if res.Warning != "" {
			o.Events(Event{Kind: "warning", Message: res.Warning})
		}
		return nil
	})
}

// retry runs fn again after the relay's rate limit (429), waiting
// o.RetryWait each time.
func retry(ctx context.Context, o Options, fn func() error) error {
	for i := 0; ; i++ {
		err := fn()
		if err == nil || i >= maxRetries || !errors.Is(err, &api.Error{Status: http.StatusTooManyRequests}) {
			return err
		}
		o.Events(Event{Kind: "wait", Message: fmt.Sprintf("the relay's rate limit was reached; retrying in %s", o.RetryWait)})
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(o.RetryWait):
		}
	}
}
