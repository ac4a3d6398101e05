package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/portlama/portlama/internal/agent"
	"github.com/portlama/portlama/internal/api"
	"github.com/portlama/portlama/internal/sites/deploy"
	"github.com/portlama/portlama/internal/sites/sitepath"
	"github.com/portlama/portlama/internal/validate"
)

// siteClient returns a panel client and the site ref names (a name, fqdn
// or id), among the sites this agent may use.
func siteClient(ctx context.Context, g *globals, ref string) (*agent.Client, api.Site, error) {
	_, c, err := apiClient(g)
	if err != nil {
		return nil, api.Site{}, err
	}
	site, err := resolveSite(ctx, c, ref)
	return c, site, err
}

func resolveSite(ctx context.Context, c *agent.Client, ref string) (api.Site, error) {
	list, err := c.ListSites(ctx)
	if err != nil {
		return api.Site{}, err
	}
	for _, s := range list {
		if s.Name == ref || s.FQDN == ref || (validate.UUID(ref) == nil && s.ID == ref) {
			return s, nil
		}
	}
	return api.Site{}, fmt.Errorf("no site %q among the sites this agent may use (see `portlama-agent sites list`; an admin adds sites to the agent's allowedSites)", ref)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newSitesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sites",
		Short: "List static sites on the relay, deploy a built directory to one, list its files",
		Long: `Static sites are served by the relay itself from its disk, so they stay online
when this machine is off. An admin creates a site and adds its name to this
agent's allowedSites; the agent needs sites:read to list sites and files, and
sites:read with sites:write to deploy.`,
	}
	var jsonOut bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the sites this agent may use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, c, err := apiClient(g)
			if err != nil {
				return err
			}
			ss, err := c.ListSites(cmd.Context())
			if err != nil {
				return err
			}
			if jsonOut {
				return printJSON(cmd.OutOrStdout(), ss)
			}
			if len(ss) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "No sites. An admin creates them and adds them to this agent's allowed sites.")
				return nil
			}
			tw := newTable(cmd.OutOrStdout(), "NAME", "URL", "TYPE", "LIVE", "SPA", "LOGIN", "SIZE")
			for _, s := range ss {
				tw.row(s.Name, "https://"+s.FQDN+"/", string(s.Type), yesNo(s.CertIssued), yesNo(s.SPAMode), yesNo(s.AutheliaProtected), sitepath.FormatSize(s.TotalSize))
			}
			return tw.flush()
		},
	}
	list.Flags().BoolVar(&jsonOut, "json", false, "print JSON")

	var del, deployJSON bool
	dep := &cobra.Command{
		Use:   "deploy SITE DIR",
		Short: "Upload a built directory to a site: only changed files (size and SHA-256)",
		Long: `Uploads the files of DIR that the site does not have or has with another
content, in a few streamed requests. With --delete, the site's files that DIR
does not have are removed. Hidden files and extensions sites may not have are
skipped and listed. --json prints one JSON event per line.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, site, err := siteClient(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var events func(deploy.Event)
			if deployJSON {
				enc := json.NewEncoder(out)
				events = func(e deploy.Event) { enc.Encode(e) }
			} else {
				events = humanEvents(out)
			}
			res, err := deploy.Deploy(cmd.Context(), c, site.ID, args[1], deploy.Options{Delete: del, Events: events})
			if err != nil {
				return err
			}
			if !deployJSON {
				fmt.Fprintf(out, "https://%s/: %d uploaded (%s), %d deleted, %d unchanged, %d skipped.\n",
					site.FQDN, res.Uploaded, sitepath.FormatSize(res.Bytes), res.Deleted, res.Unchanged, res.Skipped)
			}
			return nil
		},
	}
	dep.Flags().BoolVar(&del, "delete", false, "remove the site's files that DIR does not have")
	dep.Flags().BoolVar(&deployJSON, "json", false, "print one JSON event per line")

	var filesJSON, recursive bool
	files := &cobra.Command{
		Use:   "files SITE [PATH]",
		Short: "List a site's files (one directory, or everything below it with --recursive)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, site, err := siteClient(cmd.Context(), g, args[0])
			if err != nil {
				return err
			}
			dir := ""
			if len(args) == 2 {
				dir = args[1]
			}
			l, err := c.SiteFiles(cmd.Context(), site.ID, dir, recursive)
			if err != nil {
				return err
			}
			if filesJSON {
				return printJSON(cmd.OutOrStdout(), l)
			}
			if len(l.Files) == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is empty.\n", l.Path)
				return nil
			}
			tw := newTable(cmd.OutOrStdout(), "TYPE", "SIZE", "MODIFIED", "PATH")
			for _, f := range l.Files {
				size := ""
				if f.Type == api.SiteFileRegular {
					size = strconv.FormatInt(f.Size, 10)
				}
				tw.row(string(f.Type), size, f.ModifiedAt, f.RelativePath)
			}
			return tw.flush()
		},
	}
	files.Flags().BoolVar(&filesJSON, "json", false, "print JSON")
	files.Flags().BoolVarP(&recursive, "recursive", "r", false, "list everything below PATH")

	cmd.AddCommand(list, dep, files)
	return cmd
}

// humanEvents prints a deploy's progress for people.
func humanEvents(w io.Writer) func(deploy.Event) {
	return func(e deploy.Event) {
		switch e.Kind {
		case "plan":
			fmt.Fprintf(w, "%d to upload (%s), %d to delete, %d unchanged.\n", e.Upload, sitepath.FormatSize(e.Bytes), e.Delete, e.Unchanged)
		case "skip":
			fmt.Fprintf(w, "skip    %s: %s\n", e.Path, e.Message)
		case "upload":
			fmt.Fprintf(w, "upload  %s (%s)\n", e.Path, sitepath.FormatSize(e.Bytes))
		case "progress":
			if e.Bytes > 0 {
				fmt.Fprintf(w, "        %3d%%  %s of %s\n", e.Sent*100/e.Bytes, sitepath.FormatSize(e.Sent), sitepath.FormatSize(e.Bytes))
			}
		case "delete":
			fmt.Fprintf(w, "delete  %s\n", e.Path)
		case "wait", "warning":
			fmt.Fprintf(w, "note    %s\n", e.Message)
		}
	}
}
