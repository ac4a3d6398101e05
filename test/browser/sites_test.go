package browser

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/demo"
	"github.com/portlama/portlama/internal/system"
	"github.com/portlama/portlama/internal/testutil"
)

// sitesSteps creates a managed site, uploads files into it from the file
// browser and fetches one through nginx; creates a custom-domain site and
// walks its DNS check from "no record" to live; edits settings; deletes a
// file and a site with confirmation.
func sitesSteps(t *testing.T, b *Browser, st *demo.Stack, base string) {
	d := demo.Domain
	b.Must("open sites", chromedp.Navigate(base+"/sites"), WaitHeading("Sites"), WaitText(demo.SampleSite+"."+d))
	b.Axe("sites")

	b.Must("create a managed site", Click("New site"), Fill("name", "docs"), Click("Create site"), WaitText("docs."+d+" created"))

	// A domain of its own: the DNS dialog opens, explains the missing
	// record, and the site goes live once the record exists.
	const own = "www.blog.localhost"
	b.Must("create a custom-domain site", Click("New site"), Fill("name", "blog"),
		chromedp.Click(chromedp.CSS(`input[type="radio"][value="custom"]`)), Fill("customDomain", own), Click("Create site"),
		WaitText("DNS for "+own))
	b.Must("verify without a record", Click("Verify DNS"), WaitText(own+" has no A record yet"))
	b.Screenshot("sites-dns")
	b.Axe("site DNS dialog")
	st.DNS.SetA(own, "127.0.0.1")
	b.Must("verify with the record", Click("Verify DNS"), WaitText("The site is live"), Click("Done"))

	// Files: two uploaded with progress, one refused before sending.
	dir := t.TempDir()
	page := "<!doctype html><title>docs</title><p>Uploaded from the browser test</p>\n"
	files := map[string]string{"hello.html": page, "notes.txt": "some notes\n", "setup.sh": "#!/bin/sh\n"}
	var paths []string
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	b.Must("open the files", Click("Files of docs."+d), WaitHeading("docs."+d), WaitText("index.html"))
	b.Must("upload", chromedp.SetUploadFiles(chromedp.CSS(`input[name="files"]`), paths),
		WaitText("2 of 2 uploaded"), WaitText("Not sent: File 'setup.sh' has disallowed extension '.sh'"), WaitText("hello.html"))
	b.Screenshot("sites-files")
	b.Axe("site files")

	pc := adminAPI(t, st)
	ctx := context.Background()
	var docs api.Site
	list, err := pc.ListSites(ctx)
	for _, s := range list {
		if s.Name == "docs" {
			docs = s
		}
	}
	if err != nil || docs.ID == "" {
		t.Fatalf("the API does not list the site the form created: %v %+v", err, list)
	}

	// nginx serves the uploaded page from the relay's disk.
	waitServed(t, b, st.Relay.Addrs.HostURL("docs", d)+"/hello.html", "Uploaded from the browser test", 20*time.Second)

	b.Must("delete a file", chromedp.Navigate(base+"/sites/"+docs.ID), WaitText("notes.txt"), Click("Delete notes.txt"), WaitText("Delete file?"), Click("Delete"),
		Until(`![...document.querySelectorAll('[data-testid="file-row"]')].some((r) => r.innerText.includes("notes.txt"))`))
	left, err := pc.SiteFiles(ctx, docs.ID, ".", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range left.Files {
		if f.Name == "notes.txt" {
			t.Fatalf("notes.txt is still on the site after its deletion: %+v", left.Files)
		}
	}

	b.Must("settings", chromedp.Navigate(base+"/sites"), WaitText("docs."+d), Click("Settings of docs."+d), WaitText("Settings of docs."+d),
		chromedp.Click(chromedp.Search(`//dialog[@open]//label[contains(., "Single-page app")]`)), Click("Save settings"), WaitText("Settings of docs."+d+" saved"))
	// A change the auth server does not confirm (it is stopped): saved, and
	// the page shows the API's warning.
	stopped, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := st.Supervisor.Stop(stopped, system.UnitAuth); err != nil {
		t.Fatal(err)
	}
	// The later subtests need the auth server, whatever happens here.
	authBack := false
	startAuth := func() {
		if authBack {
			return
		}
		authBack = true
		if err := st.Supervisor.Start(stopped, system.UnitAuth); err != nil {
			t.Fatal(err)
		}
		waitListening(t, st.Relay.Addrs.Auth, 20*time.Second)
	}
	defer startAuth()
	// Login required for one user: a new access rule, which the stopped
	// auth server cannot confirm. (Requiring login alone changes only the
	// vhost, which nginx's reload puts in force.)
	b.Must("an unconfirmed change", Click("Settings of docs."+d), WaitText("Settings of docs."+d),
		chromedp.Click(chromedp.Search(`//dialog[@open]//label[contains(., "Require login")]`)),
		chromedp.Click(chromedp.Search(`//dialog[@open]//fieldset//label[normalize-space(.)="demo"]`)), Click("Save settings"),
		Visible(`[data-tone="warning"]`), WaitText("the auth server has not confirmed"))
	b.Screenshot("sites-warning")
	startAuth()
	b.Must("the list", chromedp.Reload(), WaitHeading("Sites"), WaitText("SPA"))
	b.Screenshot("sites")
	b.Axe("sites with three sites")
	b.Must("dark mode", Dark(true))
	b.Screenshot("sites-dark")
	b.Axe("sites (dark)")
	b.Must("phone", Dark(false), Phone(true), chromedp.Navigate(base+"/sites/"+docs.ID), WaitText("hello.html"))
	b.Axe("site files (phone)")
	b.Must("desktop", Phone(false), chromedp.Navigate(base+"/sites"), WaitText("docs."+d))
	b.Must("delete a site", Click("Delete "+own), WaitText("Delete site?"), Click("Delete site"), WaitText(own+" deleted"))
	list, err = pc.ListSites(ctx)
	for _, s := range list {
		if s.Name == "blog" {
			t.Fatalf("the deleted site is still listed: %+v", s)
		}
		if s.Name == "docs" && (!s.SPAMode || !s.AutheliaProtected) {
			t.Errorf("the settings dialog did not turn SPA mode and login protection on: %+v", s)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	b.NoProblems(t, "sites")
}

// waitListening waits until addr accepts TCP connections (a restarted unit).
func waitListening(t *testing.T, addr string, within time.Duration) {
	t.Helper()
	if err := testutil.Eventually(within, func() error {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("%s does not accept connections: %v", addr, err)
	}
}
