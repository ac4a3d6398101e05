package sites

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/errkind"
	"github.com/portlama/portlama/internal/sites/sitepath"
)

// maxFieldSize bounds a multipart part without a file name (a form field),
// which uploads read and ignore.
const maxFieldSize = 64 << 10

var errFileNotFound = errkind.New(errkind.NotFound, "File not found")

// openFiles finds the caller's site, applies the file rules to rel (the
// root itself is allowed when root is true; "" means the root) and opens
// the site's directory for the file operations.
func (s *Service) openFiles(c Caller, id, rel string, root bool) (api.Site, string, *os.Root, error) {
	site, err := s.Get(c, id)
	if err != nil {
		return api.Site{}, "", nil, err
	}
	if rel == "" && root {
		rel = "."
	}
	clean, err := sitepath.Clean(rel, root)
	if err != nil {
		return api.Site{}, "", nil, err
	}
	r, err := os.OpenRoot(site.RootPath)
	if err != nil {
		return api.Site{}, "", nil, errkind.Wrap(errkind.Failed, err, "Failed to open the site's files")
	}
	return site, clean, r, nil
}

// Files lists the direct children of rel (directories first, then by name)
// or, with recursive, every file and directory below rel with the SHA-256
// of each file (by relativePath). Hidden entries are never listed.
func (s *Service) Files(c Caller, id, rel string, recursive bool) (api.SiteFileList, error) {
	_, clean, root, err := s.openFiles(c, id, rel, true)
	if err != nil {
		return api.SiteFileList{}, err
	}
	defer root.Close()
	fi, err := root.Stat(clean)
	if errors.Is(err, fs.ErrNotExist) {
		return api.SiteFileList{}, errkind.New(errkind.NotFound, "Path not found")
	}
	if err != nil {
		return api.SiteFileList{}, errkind.Wrap(errkind.Failed, err, "Failed to list files")
	}
	if !fi.IsDir() {
		return api.SiteFileList{}, errkind.New(errkind.Invalid, "Path is not a directory")
	}
	out := api.SiteFileList{Files: []api.SiteFile{}, Path: clean}
	if recursive {
		err = fs.WalkDir(root.FS(), clean, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == clean {
				return nil
			}
			if strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			e, ok, err := entry(root, p, d, true)
			if ok {
				out.Files = append(out.Files, e)
			}
			return err
		})
		slices.SortFunc(out.Files, func(a, b api.SiteFile) int { return strings.Compare(a.RelativePath, b.RelativePath) })
	} else {
		var ds []fs.DirEntry
		ds, err = fs.ReadDir(root.FS(), clean)
		for _, d := range ds {
			if strings.HasPrefix(d.Name(), ".") {
				continue
			}
			e, ok, eerr := entry(root, path.Join(clean, d.Name()), d, false)
			if eerr != nil {
				err = eerr
				break
			}
			if ok {
				out.Files = append(out.Files, e)
			}
		}
		slices.SortStableFunc(out.Files, func(a, b api.SiteFile) int {
			if (a.Type == api.SiteFileDirectory) != (b.Type == api.SiteFileDirectory) {
				if a.Type == api.SiteFileDirectory {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Name, b.Name)
		})
	}
	if err != nil {
		return api.SiteFileList{}, errkind.Wrap(errkind.Failed, err, "Failed to list files")
	}
	return out, nil
}

// entry describes p; ok is false for what is neither a regular file nor a
// directory (nginx serves only those).
func entry(root *os.Root, p string, d fs.DirEntry, hash bool) (api.SiteFile, bool, error) {
	info, err := d.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return api.SiteFile{}, false, nil // removed meanwhile
	}
	if err != nil {
		return api.SiteFile{}, false, err
	}
	e := api.SiteFile{Name: d.Name(), RelativePath: p, ModifiedAt: api.FormatTime(info.ModTime())}
	switch {
	case info.IsDir():
		e.Type = api.SiteFileDirectory
	case info.Mode().IsRegular():
		e.Type, e.Size = api.SiteFileRegular, info.Size()
		if hash {
			if e.SHA256, err = fileHash(root, p); errors.Is(err, fs.ErrNotExist) {
				return api.SiteFile{}, false, nil
			} else if err != nil {
				return api.SiteFile{}, false, err
			}
		}
	default:
		return api.SiteFile{}, false, nil
	}
	return e, true, nil
}

func fileHash(root *os.Root, p string) (string, error) {
	f, err := root.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return sitepath.SHA256(f)
}

// Upload stores every file part of mr at <dir>/<its filename> (the file
// rules apply to both, and the file needs an allowed extension), one part
// at a time: each is streamed into a temporary file beside its target,
// limited to sitepath.MaxFileSize, and renamed into place (0644; directories
// 0755). A part that breaks a rule ends the upload with "Upload failed:
// <reason>"; the parts stored before it stay. The site's totalSize is
// recomputed either way; above maxSiteSize the answer carries a warning.
func (s *Service) Upload(ctx context.Context, c Caller, id, dir string, mr *multipart.Reader) (api.SiteUpload, error) {
	site, cleanDir, root, err := s.openFiles(c, id, dir, true)
	if err != nil {
		return api.SiteUpload{}, err
	}
	defer root.Close()

	stored, upErr := s.storeParts(ctx, root, cleanDir, mr)
	total := s.updateSize(site)
	if upErr != nil {
		return api.SiteUpload{}, upErr
	}
	if len(stored) == 0 {
		return api.SiteUpload{}, uploadFailed("the request has no file parts")
	}
	out := api.SiteUpload{OK: true, Files: stored}
	if set, err := s.cfg.Settings(); err == nil && set.MaxSiteSize > 0 && total > set.MaxSiteSize {
		out.Warning = fmt.Sprintf("Site size (%s) exceeds the %s limit.", sitepath.FormatSize(total), sitepath.FormatSize(set.MaxSiteSize))
		out.TotalSize = &total
	}
	return out, nil
}

func uploadFailed(format string, args ...any) error {
	return errkind.New(errkind.Invalid, "Upload failed: %s", fmt.Sprintf(format, args...))
}

// storeParts stores the file parts of mr below dir and returns their paths.
func (s *Service) storeParts(ctx context.Context, root *os.Root, dir string, mr *multipart.Reader) ([]string, error) {
	stored := []string{}
	for {
		if err := ctx.Err(); err != nil {
			return stored, uploadFailed("%v", err)
		}
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return stored, nil
		}
		if err != nil {
			return stored, uploadFailed("malformed multipart body: %v", err)
		}
		name, isFile, err := sitepath.PartFileName(part.Header)
		if err != nil {
			part.Close()
			return stored, uploadFailed("%s", errkind.Message(err))
		}
		if !isFile {
			n, err := io.Copy(io.Discard, io.LimitReader(part, maxFieldSize+1))
			part.Close()
			if err != nil {
				return stored, uploadFailed("read a form field: %v", err)
			}
			if n > maxFieldSize {
				return stored, uploadFailed("a part without a file name is larger than %s", sitepath.FormatSize(maxFieldSize))
			}
			continue
		}
		rel, err := sitepath.Upload(dir, name)
		if err != nil {
			part.Close()
			return stored, uploadFailed("%s", errkind.Message(err))
		}
		err = writeFile(root, rel, name, part)
		part.Close()
		if err != nil {
			return stored, err
		}
		stored = append(stored, rel)
	}
}

// writeFile streams r into rel below root: parent directories are created
// (0755), the content goes to a hidden temporary file in the target's
// directory (never served: dot files are not), which is synced, made 0644
// and renamed over the target.
func writeFile(root *os.Root, rel, name string, r io.Reader) (err error) {
	dir := path.Dir(rel)
	if err := mkdirs(root, dir); err != nil {
		return err
	}
	if fi, err := root.Lstat(rel); err == nil && fi.IsDir() {
		return uploadFailed("'%s' is a directory", rel)
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := path.Join(dir, ".upload-"+hex.EncodeToString(rnd[:])+".tmp")
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return writeFailed(rel, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			root.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, io.LimitReader(r, sitepath.MaxFileSize+1))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Op == "write" {
			return writeFailed(rel, err)
		}
		return uploadFailed("read '%s': %v", name, err)
	}
	if n > sitepath.MaxFileSize {
		return uploadFailed("File '%s' is larger than %s", name, sitepath.FormatSize(sitepath.MaxFileSize))
	}
	if err = f.Chmod(0o644); err != nil {
		return writeFailed(rel, err)
	}
	if err = f.Sync(); err != nil {
		return writeFailed(rel, err)
	}
	if err = f.Close(); err != nil {
		return writeFailed(rel, err)
	}
	if err = root.Rename(tmp, rel); err != nil {
		return writeFailed(rel, err)
	}
	if d, derr := root.Open(dir); derr == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func writeFailed(rel string, err error) error {
	return errkind.Wrap(errkind.Failed, err, "Upload failed: could not store '%s'", rel)
}

// mkdirs creates dir and its parents below root (0755 whatever the umask);
// an existing file in the way is the client's error.
func mkdirs(root *os.Root, dir string) error {
	if dir == "." {
		return nil
	}
	cur := ""
	for _, c := range strings.Split(dir, "/") {
		cur = path.Join(cur, c)
		fi, err := root.Lstat(cur)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return uploadFailed("'%s' is a file, not a directory", cur)
		case !errors.Is(err, fs.ErrNotExist):
			return writeFailed(cur, err)
		}
		if err := root.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return writeFailed(cur, err)
		}
		if err := root.Chmod(cur, 0o755); err != nil {
			return writeFailed(cur, err)
		}
	}
	return nil
}

// DeleteFile removes a file or a whole directory of the site (the file
// rules apply; the root itself is "Path traversal detected") and
// recomputes the site's totalSize.
func (s *Service) DeleteFile(ctx context.Context, c Caller, id, rel string) error {
	site, clean, root, err := s.openFiles(c, id, rel, false)
	if err != nil {
		return err
	}
	defer root.Close()
	if _, err := root.Lstat(clean); errors.Is(err, fs.ErrNotExist) {
		return errFileNotFound
	} else if err != nil {
		return errkind.Wrap(errkind.Failed, err, "Failed to delete file")
	}
	if err := root.RemoveAll(clean); err != nil {
		return errkind.Wrap(errkind.Failed, err, "Failed to delete file")
	}
	s.updateSize(site)
	return nil
}

// size sums the regular files below the site's root.
func (s *Service) size(site api.Site) int64 {
	var total int64
	root, err := os.OpenRoot(site.RootPath)
	if err != nil {
		return 0
	}
	defer root.Close()
	fs.WalkDir(root.FS(), ".", func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

// updateSize recomputes the site's totalSize and saves it (errors are
// logged only: the size is informational).
func (s *Service) updateSize(site api.Site) int64 {
	total := s.size(site)
	if _, err := s.doc.Update(func(all *[]api.Site) error {
		for i := range *all {
			if (*all)[i].ID == site.ID {
				(*all)[i].TotalSize = total
			}
		}
		return nil
	}); err != nil {
		s.cfg.Log.Warn("save site size", "site", site.Name, "err", err)
	}
	return total
}
