package api

// User is a user of the auth server's users file (no password hash).
type User struct {
	Username    string   `json:"username"`
	DisplayName string   `json:"displayname"`
	Email       string   `json:"email"`
	Groups      []string `json:"groups"`
}

// UserList answers GET /api/users and GET /api/identity/users.
type UserList struct {
	Users []User `json:"users"`
}

// CreateUserRequest is the body of POST /api/users.
type CreateUserRequest struct {
	Username    string   `json:"username"`
	DisplayName string   `json:"displayname"`
	Email       string   `json:"email"`
	Password    string   `json:"password"`
	Groups      []string `json:"groups,omitempty"`
}

// UpdateUserRequest is the body of PUT /api/users/:username: at least one
// field; nil fields are absent.
type UpdateUserRequest struct {
	DisplayName *string   `json:"displayname,omitempty"`
	Email       *string   `json:"email,omitempty"`
	Password    *string   `json:"password,omitempty"`
	Groups      *[]string `json:"groups,omitempty"`
}

// UserResponse answers POST /api/users and PUT /api/users/:username.
type UserResponse struct {
	OK   bool `json:"ok"`
	User User `json:"user"`
	// Warning: the change is saved but a relay service did not confirm it
	// is in force yet (docs/api.md, "Changes in force").
	Warning string `json:"warning,omitempty"`
}

// TOTPReset answers POST /api/users/:username/reset-totp.
type TOTPReset struct {
	OK      bool   `json:"ok"`
	TOTPURI string `json:"totpUri"`
	TOTPQR  string `json:"totpQr"` // data:image/png;base64,...
}

// Self answers GET /api/identity/self.
type Self struct {
	Username    string   `json:"username"`
	DisplayName string   `json:"displayName"`
	Email       string   `json:"email"`
	Groups      []string `json:"groups"`
}

// UserLookup answers GET /api/identity/users/:username.
type UserLookup struct {
	User User `json:"user"`
}

// GroupList answers GET /api/identity/groups (sorted, unique).
type GroupList struct {
	Groups []string `json:"groups"`
}

// Invitation statuses.
const (
	InvitationPending  = "pending"
	InvitationAccepted = "accepted"
	InvitationExpired  = "expired"
)

// Invitation is an entry of GET /api/invitations (the token is never
// listed).
type Invitation struct {
	ID         string   `json:"id"`
	Username   string   `json:"username"`
	Email      string   `json:"email"`
	Groups     []string `json:"groups"`
	CreatedAt  string   `json:"createdAt"`
	ExpiresAt  string   `json:"expiresAt"`
	Used       bool     `json:"used"`
	AcceptedAt *string  `json:"acceptedAt"`
	Status     string   `json:"status"`
}

// InvitationList answers GET /api/invitations.
type InvitationList struct {
	Invitations []Invitation `json:"invitations"`
}

// CreateInvitationRequest is the body of POST /api/invitations.
type CreateInvitationRequest struct {
	Username      string   `json:"username"`
	Email         string   `json:"email"`
	Groups        []string `json:"groups,omitempty"`
	ExpiresInDays *int     `json:"expiresInDays,omitempty"` // 1–30, default 7
}

// NewInvitation is the invitation in the POST /api/invitations answer.
type NewInvitation struct {
	ID        string   `json:"id"`
	Username  string   `json:"username"`
	Email     string   `json:"email"`
	Groups    []string `json:"groups"`
	CreatedAt string   `json:"createdAt"`
	ExpiresAt string   `json:"expiresAt"`
}

// CreateInvitationResponse answers POST /api/invitations. InviteURL is
// https://auth.<d>/invite/#<token> (null without a domain); the token is
// shown only here.
type CreateInvitationResponse struct {
	OK         bool          `json:"ok"`
	Invitation NewInvitation `json:"invitation"`
	InviteURL  *string       `json:"inviteUrl"`
	Token      string        `json:"token"`
}

// InviteLookupRequest is the body of the public POST /api/invite/lookup.
type InviteLookupRequest struct {
	Token string `json:"token"`
}

// InviteDetails answers POST /api/invite/lookup.
type InviteDetails struct {
	Username  string `json:"username"`
	Email     string `json:"email"`
	ExpiresAt string `json:"expiresAt"`
}

// InviteAcceptRequest is the body of the public POST /api/invite/accept.
type InviteAcceptRequest struct {
	Token    string `json:"token"`
	Password string `json:"password"`
}

// InviteAcceptResponse answers POST /api/invite/accept. The TOTP fields are
// null when the auth server could not create a secret (the account exists).
type InviteAcceptResponse struct {
	OK       bool    `json:"ok"`
	Username string  `json:"username"`
	LoginURL *string `json:"loginUrl"`
	TOTPURI  *string `json:"totpUri"`
	TOTPQR   *string `json:"totpQr"`
}

// TwoFAStatus answers GET /api/settings/2fa.
type TwoFAStatus struct {
	Enabled       bool `json:"enabled"`
	SetupComplete bool `json:"setupComplete"`
}

// TwoFASetup answers POST /api/settings/2fa/setup.
type TwoFASetup struct {
	URI       string `json:"uri"`
	ManualKey string `json:"manualKey"`
	TOTPQR    string `json:"totpQr"`
}

// TwoFACode is the body of POST /api/settings/2fa/confirm, verify and
// disable: six digits.
type TwoFACode struct {
	Code string `json:"code"`
}

// TwoFAEnabled answers POST /api/settings/2fa/confirm and disable.
type TwoFAEnabled struct {
	Enabled bool `json:"enabled"`
}

// TwoFAVerified answers POST /api/settings/2fa/verify (with the session
// cookie portlama_2fa_session).
type TwoFAVerified struct {
	Verified bool `json:"verified"`
}

// TwoFACookieName is the panel 2FA session cookie, set by
// POST /api/settings/2fa/verify and confirm.
const TwoFACookieName = "portlama_2fa_session"
