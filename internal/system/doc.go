// Package system is the relay's view of its machine.
//
//   - Commands: Run(ctx, cmd, argv...) runs argv (never a shell) with a
//     CommandFunc (Exec on this machine; the lab passes one that enters a
//     container) and returns a *CommandError with the output on failure.
//   - Services: ServiceManager is what the panel's services API and
//     provisioning use — Start, Stop, Restart, Reload, Enable, Disable,
//     Status (UnitStatus: the contract's state, since when, main pid;
//     Uptime, FormatUptime) and Follow (a unit's log lines, LogLine, with
//     back-pressure through a blocking callback). Systemd implements it with
//     systemctl and journalctl; on a relay the panel wraps it in
//     privilege.Services so actions go through the root helper. A
//     child-process supervisor (demo, tests) can implement the same
//     interface.
//   - Stats: Collector reads CPU, memory, disk and uptime for
//     GET /api/system/stats (docs/api.md, "Health and onboarding") from /proc and statfs.
package system
