package panelclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"

	"github.com/portlama/portlama/internal/api"
)

// maxListing bounds a recursive file listing's answer (tens of thousands
// of entries).
const maxListing = 64 << 20

// ListSites calls GET /api/sites (newest first; agents see their
// allowedSites).
func (c *Client) ListSites(ctx context.Context) ([]api.Site, error) {
	var out api.SiteList
	if err := c.do(ctx, http.MethodGet, "/api/sites", nil, &out); err != nil {
		return nil, err
	}
	return out.Sites, nil
}

// CreateSite calls POST /api/sites.
func (c *Client) CreateSite(ctx context.Context, r api.CreateSiteRequest) (api.SiteResponse, error) {
	var out api.SiteResponse
	return out, c.do(ctx, http.MethodPost, "/api/sites", r, &out)
}

// UpdateSite calls PATCH /api/sites/:id.
func (c *Client) UpdateSite(ctx context.Context, id string, r api.UpdateSiteRequest) (api.SiteResponse, error) {
	var out api.SiteResponse
	return out, c.do(ctx, http.MethodPatch, "/api/sites/"+url.PathEscape(id), r, &out)
}

// DeleteSite calls DELETE /api/sites/:id.
func (c *Client) DeleteSite(ctx context.Context, id string) (api.SiteDeleted, error) {
	var out api.SiteDeleted
	return out, c.do(ctx, http.MethodDelete, "/api/sites/"+url.PathEscape(id), nil, &out)
}

// VerifySiteDNS calls POST /api/sites/:id/verify-dns.
func (c *Client) VerifySiteDNS(ctx context.Context, id string) (api.SiteDNSCheck, error) {
	var out api.SiteDNSCheck
	return out, c.do(ctx, http.MethodPost, "/api/sites/"+url.PathEscape(id)+"/verify-dns", struct{}{}, &out)
}

// SiteFiles calls GET /api/sites/:id/files?path=<dir> ("" for the root);
// recursive lists everything below dir, with each file's SHA-256.
func (c *Client) SiteFiles(ctx context.Context, id, dir string, recursive bool) (api.SiteFileList, error) {
	q := url.Values{}
	if dir != "" {
		q.Set("path", dir)
	}
	if recursive {
		q.Set("recursive", "true")
	}
	p := "/api/sites/" + url.PathEscape(id) + "/files"
	if len(q) > 0 {
		p += "?" + q.Encode()
	}
	var out api.SiteFileList
	data, _, err := c.roundTrip(ctx, c.http, http.MethodGet, p, nil, "", maxListing)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("GET %s: unexpected answer: %w", p, err)
	}
	return out, nil
}

// DeleteSiteFile calls DELETE /api/sites/:id/files for a file or a whole
// directory.
func (c *Client) DeleteSiteFile(ctx context.Context, id, path string) error {
	return c.do(ctx, http.MethodDelete, "/api/sites/"+url.PathEscape(id)+"/files", api.DeleteSiteFileRequest{Path: path}, nil)
}

// UploadFile is one file of an upload: its path below the upload
// directory (forward slashes) and where its content comes from.
type UploadFile struct {
	Path string
	Open func() (io.ReadCloser, error)
}

// UploadSiteFiles calls POST /api/sites/:id/files?path=<dir> with one
// multipart part per file, streamed as it is read (nothing is held in
// memory). progress, when not nil, is called with the number of content
// bytes sent so far. The request has no overall timeout: ctx bounds it.
func (c *Client) UploadSiteFiles(ctx context.Context, id, dir string, files []UploadFile, progress func(sent int64)) (api.SiteUpload, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeParts(mw, files, progress))
	}()
	p := "/api/sites/" + url.PathEscape(id) + "/files"
	if dir != "" && dir != "." {
		p += "?" + url.Values{"path": {dir}}.Encode()
	}
	hc := *c.http
	hc.Timeout = 0
	data, _, err := c.roundTrip(ctx, &hc, http.MethodPost, p, pr, mw.FormDataContentType(), maxAnswer)
	pr.CloseWithError(io.ErrClosedPipe) // stops the writer if the answer came early
	var out api.SiteUpload
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return out, fmt.Errorf("POST %s: unexpected answer: %w", p, err)
	}
	return out, nil
}

func writeParts(mw *multipart.Writer, files []UploadFile, progress func(int64)) error {
	var sent int64
	for _, f := range files {
		w, err := mw.CreatePart(partHeader(f.Path))
		if err != nil {
			return err
		}
		r, err := f.Open()
		if err != nil {
			return fmt.Errorf("open %s: %w", f.Path, err)
		}
		_, err = io.Copy(w, &countingReader{r: r, n: &sent, progress: progress})
		r.Close()
		if err != nil {
			return fmt.Errorf("send %s: %w", f.Path, err)
		}
	}
	return mw.Close()
}

// partHeader is a file part's header; the file name keeps its directories
// (the relay stores the file there).
func partHeader(name string) map[string][]string {
	esc := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", "", "\n", "").Replace(name)
	return map[string][]string{
		"Content-Disposition": {`form-data; name="file"; filename="` + esc + `"`},
		"Content-Type":        {"application/octet-stream"},
	}
}

type countingReader struct {
	r        io.Reader
	n        *int64
	progress func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	if c.progress != nil && n > 0 {
		c.progress(*c.n)
	}
	return n, err
}
