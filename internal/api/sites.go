package api

// SiteType says where a static site lives.
type SiteType string

// Site types.
const (
	SiteManaged SiteType = "managed" // <name>.<d>, under the relay's domain
	SiteCustom  SiteType = "custom"  // its own domain, live after verify-dns
)

// Site is a static site as stored in sites.json and returned by every site
// route. AutheliaProtected keeps its name for compatibility: visitors must
// sign in through portlama-auth.
type Site struct {
	ID                string   `json:"id"`
	Name              string   `json:"name"`
	FQDN              string   `json:"fqdn"`
	Type              SiteType `json:"type"`
	SPAMode           bool     `json:"spaMode"`
	AutheliaProtected bool     `json:"autheliaProtected"`
	AllowedUsers      []string `json:"allowedUsers"`
	DNSVerified       bool     `json:"dnsVerified"`
	CertIssued        bool     `json:"certIssued"`
	RootPath          string   `json:"rootPath"` // <www>/<id>
	CreatedAt         string   `json:"createdAt"`
	TotalSize         int64    `json:"totalSize"` // bytes of the site's files
}

// CreateSiteRequest is the body of POST /api/sites. CustomDomain is used
// only by custom sites.
type CreateSiteRequest struct {
	Name              string   `json:"name"`
	Type              SiteType `json:"type"`
	CustomDomain      string   `json:"customDomain,omitempty"`
	SPAMode           bool     `json:"spaMode,omitempty"`
	AutheliaProtected bool     `json:"autheliaProtected,omitempty"`
}

// UpdateSiteRequest is the body of PATCH /api/sites/:id; nil fields are
// absent.
type UpdateSiteRequest struct {
	SPAMode           *bool     `json:"spaMode,omitempty"`
	AutheliaProtected *bool     `json:"autheliaProtected,omitempty"`
	AllowedUsers      *[]string `json:"allowedUsers,omitempty"`
}

// SiteResponse answers POST /api/sites and PATCH /api/sites/:id. Message
// is set for custom sites ("add an A record") and unchanged PATCHes ("No
// changes"); Warning when the change is saved but the auth server has not
// confirmed it is in force.
type SiteResponse struct {
	OK      bool   `json:"ok"`
	Site    Site   `json:"site"`
	Message string `json:"message,omitempty"`
	Warning string `json:"warning,omitempty"`
}

// SiteList answers GET /api/sites (newest first).
type SiteList struct {
	Sites []Site `json:"sites"`
}

// SiteDeleted answers DELETE /api/sites/:id; Warning as in SiteResponse.
type SiteDeleted struct {
	OK      bool   `json:"ok"`
	Warning string `json:"warning,omitempty"`
}

// SiteDNSCheck answers POST /api/sites/:id/verify-dns. FQDN, ExpectedIP and
// ResolvedIPs are sent only when the check failed (ok false).
type SiteDNSCheck struct {
	OK          bool      `json:"ok"`
	FQDN        string    `json:"fqdn,omitempty"`
	ExpectedIP  string    `json:"expectedIp,omitempty"`
	ResolvedIPs *[]string `json:"resolvedIps,omitempty"`
	Message     string    `json:"message"`
}

// SiteFileType is what a site file entry is.
type SiteFileType string

// Site file entry types.
const (
	SiteFileRegular   SiteFileType = "file"
	SiteFileDirectory SiteFileType = "directory"
)

// SiteFile is one entry of a site's files. Size is 0 for directories;
// SHA256 (hex) is sent for files of a recursive listing.
type SiteFile struct {
	Name         string       `json:"name"`
	Type         SiteFileType `json:"type"`
	Size         int64        `json:"size"`
	ModifiedAt   string       `json:"modifiedAt"`
	RelativePath string       `json:"relativePath"`
	SHA256       string       `json:"sha256,omitempty"`
}

// SiteFileList answers GET /api/sites/:id/files: the direct children of
// Path, directories first, then by name; with recursive=true every entry
// below Path, by relativePath.
type SiteFileList struct {
	Files []SiteFile `json:"files"`
	Path  string     `json:"path"`
}

// SiteUpload answers POST /api/sites/:id/files: the stored files' paths
// relative to the site root. Warning and TotalSize are sent when the site
// is now larger than maxSiteSize (the files are stored anyway).
type SiteUpload struct {
	OK        bool     `json:"ok"`
	Files     []string `json:"files"`
	Warning   string   `json:"warning,omitempty"`
	TotalSize *int64   `json:"totalSize,omitempty"`
}

// DeleteSiteFileRequest is the body of DELETE /api/sites/:id/files: a file
// or a whole directory, relative to the site root.
type DeleteSiteFileRequest struct {
	Path string `json:"path"`
}

// Messages of the site routes that clients match on.
const (
	MsgSiteNotFound     = "Site not found"
	MsgSiteAccessDenied = "You do not have access to this site"
)
