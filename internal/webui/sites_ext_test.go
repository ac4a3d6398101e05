package webui

import (
	"os"
	"regexp"
	"slices"
	"testing"

	"github.com/portlama/portlama/internal/validate"
)

// The Sites page checks file extensions before uploading (web/src/lib/sites.ts);
// its list must be the one the panel enforces, or it refuses good files or
// sends doomed ones.
func TestSiteExtensionsMatchTheUI(t *testing.T) {
	src, err := os.ReadFile("../../web/src/lib/sites.ts")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)export const siteExtensions = \[(.*?)\];`).FindSubmatch(src)
	if block == nil {
		t.Fatal("web/src/lib/sites.ts has no siteExtensions list")
	}
	var ui []string
	for _, m := range regexp.MustCompile(`"([a-z0-9]+)"`).FindAllSubmatch(block[1], -1) {
		ui = append(ui, string(m[1]))
	}
	slices.Sort(ui)
	if want := validate.SiteFileExtensions(); !slices.Equal(ui, want) {
		t.Errorf("web/src/lib/sites.ts siteExtensions = %v\nthe panel allows            %v", ui, want)
	}
}
