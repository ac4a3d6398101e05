import { useState } from "react";
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { KeyRound, Mail, Pencil, Plus, Trash2, Users as UsersIcon } from "lucide-react";
import { del, post, put, seg } from "../api/client";
import { keys, useGroups, useInvitations, useUsers } from "../api/queries";
import type { CreateInvitationRequest, CreateInvitationResponse, CreateUserRequest, Invitation, TOTPReset, UpdateUserRequest, User, UserResponse } from "../api/types.gen";
import { useToast } from "../components/toast";
import { Badge, Button, Card, CodeLine, ConfirmDialog, Dialog, Empty, ErrorState, FormActions, Loading, Notice, PageHeader, TextField } from "../components/ui";
import { checkEmail, formError, patterns, splitList, type FieldErrors } from "../lib/fieldErrors";
import { formDateOrRelative } from "../lib/dates";

const userRules: [RegExp, string][] = [[/^Username already exists|This username/, "username"]];

export function totpSecret(uri: string): string {
  try {
    return new URL(uri).searchParams.get("secret") ?? "";
  } catch {
    return "";
  }
}

export function Users() {
  const users = useUsers();
  const groups = useGroups();
  const [editing, setEditing] = useState<User | "new" | null>(null);
  const [deleting, setDeleting] = useState<User | null>(null);
  const [resetting, setResetting] = useState<User | null>(null);
  const [totp, setTotp] = useState<{ user: string; r: TOTPReset } | null>(null);
  const qc = useQueryClient();
  const toast = useToast();
  const last = (users.data?.length ?? 0) <= 1;
  return (
    <>
      <PageHeader
        title="Users"
        description="People who sign in to your apps with a password and a two-factor code."
        actions={
          <Button variant="primary" icon={<Plus aria-hidden className="size-4" />} onClick={() => setEditing("new")}>
            Add user
          </Button>
        }
      />
      <Card>
        {users.isPending ? (
          <Loading label="Loading users" />
        ) : users.isError ? (
          <ErrorState what="Users" error={users.error} retry={() => users.refetch()} />
        ) : users.data.length === 0 ? (
          <Empty title="No users yet" icon={<UsersIcon className="size-8" />}>
            Add a user, or invite one below: they choose their own password.
          </Empty>
        ) : (
          <div className="-mx-4 overflow-x-auto">
            <table className="w-full min-w-[40rem] text-left text-sm">
              <thead className="border-b border-zinc-200 text-xs text-zinc-600 uppercase dark:border-zinc-800 dark:text-zinc-400">
                <tr>
                  <th scope="col" className="px-4 py-2 font-medium">User</th>
                  <th scope="col" className="px-4 py-2 font-medium">E-mail</th>
                  <th scope="col" className="px-4 py-2 font-medium">Groups</th>
                  <th scope="col" className="px-4 py-2 font-medium"><span className="sr-only">Actions</span></th>
                </tr>
              </thead>
              <tbody className="divide-y divide-zinc-200 dark:divide-zinc-800">
                {users.data.map((u) => (
                  <tr key={u.username} data-testid="user-row">
                    <td className="px-4 py-2.5">
                      <p className="font-medium">{u.displayname}</p>
                      <p className="font-mono text-xs text-zinc-600 dark:text-zinc-400">{u.username}</p>
                    </td>
                    <td className="px-4 py-2.5">{u.email}</td>
                    <td className="px-4 py-2.5">
                      <div className="flex flex-wrap gap-1">
                        {u.groups.length ? u.groups.map((g) => <Badge key={g}>{g}</Badge>) : <span className="text-zinc-600 dark:text-zinc-400">—</span>}
                      </div>
                    </td>
                    <td className="px-4 py-2.5">
                      <div className="flex justify-end gap-1">
                        <Button size="sm" variant="ghost" aria-label={`Reset TOTP of ${u.username}`} onClick={() => setResetting(u)} icon={<KeyRound aria-hidden className="size-4" />}>
                          Reset TOTP
                        </Button>
                        <Button size="sm" variant="ghost" aria-label={`Edit ${u.username}`} onClick={() => setEditing(u)} icon={<Pencil aria-hidden className="size-4" />} />
                        <Button
                          size="sm"
                          variant="ghost"
                          aria-label={`Delete ${u.username}`}
                          title={last ? "The last user cannot be deleted" : undefined}
                          disabled={last}
                          onClick={() => setDeleting(u)}
                          icon={<Trash2 aria-hidden className="size-4 text-red-700 dark:text-red-400" />}
                        />
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            {last && <p className="px-4 pt-3 text-xs text-zinc-600 dark:text-zinc-400">The last user cannot be deleted: someone must be able to sign in. Add another user first.</p>}
          </div>
        )}
      </Card>

      <div className="mt-6 grid gap-6 lg:grid-cols-3">
        <div className="lg:col-span-2">
          <Invitations />
        </div>
        <Card title="Groups" id="groups">
          {groups.isPending ? (
            <Loading />
          ) : groups.isError ? (
            <ErrorState what="Groups" error={groups.error} retry={() => groups.refetch()} />
          ) : groups.data.length === 0 ? (
            <p className="text-sm text-zinc-600 dark:text-zinc-400">No groups yet. Give users groups to grant restricted tunnels to several people at once.</p>
          ) : (
            <ul className="flex flex-wrap gap-1.5">
              {groups.data.map((g) => (
                <li key={g}>
                  <Badge tone="teal">{g}</Badge>
                </li>
              ))}
            </ul>
          )}
        </Card>
      </div>

      {editing && <UserDialog user={editing === "new" ? null : editing} onClose={() => setEditing(null)} />}
      <ConfirmDialog
        open={!!deleting}
        title={`Delete ${deleting?.username}?`}
        confirmLabel="Delete user"
        onClose={() => setDeleting(null)}
        onConfirm={async () => {
          if (!deleting) return;
          await del(`/api/users/${seg(deleting.username)}`);
          await qc.invalidateQueries({ queryKey: keys.users });
          qc.invalidateQueries({ queryKey: keys.groups });
          toast(`${deleting.username} deleted`);
        }}
      >
        <p>Their password and two-factor secret are removed and their sessions end at once.</p>
      </ConfirmDialog>
      <ConfirmDialog
        open={!!resetting}
        danger={false}
        title={`Reset the two-factor code of ${resetting?.username}?`}
        confirmLabel="Reset TOTP"
        onClose={() => setResetting(null)}
        onConfirm={async () => {
          if (!resetting) return;
          const r = await post<TOTPReset>(`/api/users/${seg(resetting.username)}/reset-totp`);
          setTotp({ user: resetting.username, r });
        }}
      >
        <p>A new secret is made; the old authenticator entry stops working at once. You will see a QR code to scan (or give to the user).</p>
      </ConfirmDialog>
      {totp && (
        <Dialog open onClose={() => setTotp(null)} title={`New two-factor secret for ${totp.user}`} footer={<Button variant="primary" onClick={() => setTotp(null)}>Done</Button>}>
          <div className="space-y-4 text-sm">
            <p>Scan this with an authenticator app (or type the key). It is shown only now.</p>
            <img src={totp.r.totpQr} alt={`QR code of the two-factor secret for ${totp.user}`} className="mx-auto size-56 rounded bg-white p-2 ring-1 ring-zinc-200" data-testid="totp-qr" />
            <div>
              <p className="mb-1 font-medium">Manual key</p>
              <CodeLine text={totpSecret(totp.r.totpUri)} label="manual key" />
            </div>
          </div>
        </Dialog>
      )}
    </>
  );
}

function UserDialog({ user, onClose }: { user: User | null; onClose: () => void }) {
  const [username, setUsername] = useState(user?.username ?? "");
  const [displayname, setDisplayname] = useState(user?.displayname ?? "");
  const [email, setEmail] = useState(user?.email ?? "");
  const [password, setPassword] = useState("");
  const [groups, setGroups] = useState((user?.groups ?? []).join(", "));
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formErr, setFormErr] = useState("");
  const qc = useQueryClient();
  const toast = useToast();
  const m = useMutation({
    mutationFn: () => {
      const g = splitList(groups);
      if (!user) return post<UserResponse>("/api/users", { username, displayname, email, password, groups: g } satisfies CreateUserRequest);
      const body: UpdateUserRequest = { displayname, email, groups: g };
      if (password) body.password = password;
      return put<UserResponse>(`/api/users/${seg(user.username)}`, body);
    },
    onSuccess: async (r) => {
      await qc.invalidateQueries({ queryKey: keys.users });
      qc.invalidateQueries({ queryKey: keys.groups });
      toast(user ? `${r.user.username} updated` : `${r.user.username} added — give them a two-factor code with Reset TOTP`);
      onClose();
    },
    onError: (e) => {
      const fe = formError(e, userRules);
      setErrors(fe.fields);
      setFormErr(fe.form);
    },
  });
  const check = () => {
    const errs: FieldErrors = {};
    if (!user && !patterns.username.test(username)) errs.username = "2–32 lower-case letters, digits, _ or -.";
    if (!displayname || displayname.length > 100) errs.displayname = "1–100 characters.";
    const em = checkEmail(email);
    if (em) errs.email = em;
    if ((!user || password) && (password.length < 8 || password.length > 128)) errs.password = "8–128 characters.";
    const bad = splitList(groups).find((g) => !patterns.group.test(g));
    if (bad) errs.groups = `'${bad}' is not a group name: letters, digits, '.', '_' and '-'.`;
    return errs;
  };
  return (
    <Dialog open onClose={onClose} title={user ? `Edit ${user.username}` : "Add user"}>
      <form
        noValidate
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          const errs = check();
          setErrors(errs);
          setFormErr("");
          if (!Object.keys(errs).length) m.mutate();
        }}
      >
        {!user && <TextField label="Username" name="username" autoFocus autoComplete="off" spellCheck={false} value={username} onChange={(v) => setUsername(v.toLowerCase())} error={errors.username} />}
        <TextField label="Display name" name="displayname" value={displayname} onChange={setDisplayname} error={errors.displayname} />
        <TextField label="E-mail" name="email" type="email" value={email} onChange={setEmail} error={errors.email} />
        <TextField label={user ? "New password" : "Password"} name="password" type="password" autoComplete="new-password" value={password} onChange={setPassword} error={errors.password} hint={user ? "Leave empty to keep the current one; a change ends their sessions." : "At least 8 characters."} />
        <TextField label="Groups" name="groups" value={groups} onChange={setGroups} error={errors.groups} hint="Separated by commas, e.g. family, admins." />
        <FormActions error={formErr}>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" loading={m.isPending}>
            {user ? "Save" : "Add user"}
          </Button>
        </FormActions>
      </form>
    </Dialog>
  );
}

function Invitations() {
  const inv = useInvitations();
  const [inviting, setInviting] = useState(false);
  const [revoking, setRevoking] = useState<Invitation | null>(null);
  const qc = useQueryClient();
  const toast = useToast();
  return (
    <Card
      title="Invitations"
      id="invitations"
      actions={
        <Button size="sm" icon={<Mail aria-hidden className="size-4" />} onClick={() => setInviting(true)}>
          Invite user
        </Button>
      }
    >
      {inv.isPending ? (
        <Loading />
      ) : inv.isError ? (
        <ErrorState what="Invitations" error={inv.error} retry={() => inv.refetch()} />
      ) : inv.data.length === 0 ? (
        <p className="text-sm text-zinc-600 dark:text-zinc-400">No invitations. An invited person sets their own password and gets their two-factor code on acceptance.</p>
      ) : (
        <ul className="divide-y divide-zinc-200 dark:divide-zinc-800">
          {inv.data.map((i) => (
            <li key={i.id} className="flex flex-wrap items-center justify-between gap-2 py-2.5" data-testid="invitation-row">
              <div>
                <p className="font-medium">
                  {i.username} <span className="font-normal text-zinc-600 dark:text-zinc-400">{i.email}</span>
                </p>
                <p className="text-xs text-zinc-600 dark:text-zinc-400">{i.status === "accepted" ? `accepted ${formDateOrRelative(i.acceptedAt)}` : i.status === "expired" ? `expired ${formDateOrRelative(i.expiresAt)}` : `expires ${formDateOrRelative(i.expiresAt)}`}</p>
              </div>
              <div className="flex items-center gap-2">
                <Badge tone={i.status === "accepted" ? "green" : i.status === "expired" ? "neutral" : "amber"}>{i.status}</Badge>
                <Button size="sm" variant="ghost" aria-label={`Revoke the invitation of ${i.username}`} onClick={() => setRevoking(i)} icon={<Trash2 aria-hidden className="size-4 text-red-700 dark:text-red-400" />} />
              </div>
            </li>
          ))}
        </ul>
      )}
      {inviting && <InviteDialog onClose={() => setInviting(false)} />}
      <ConfirmDialog
        open={!!revoking}
        title={`Revoke the invitation of ${revoking?.username}?`}
        confirmLabel="Revoke invitation"
        onClose={() => setRevoking(null)}
        onConfirm={async () => {
          if (!revoking) return;
          await del(`/api/invitations/${seg(revoking.id)}`);
          await qc.invalidateQueries({ queryKey: keys.invitations });
          toast("Invitation revoked");
        }}
      >
        <p>The link stops working. An account already created from it stays.</p>
      </ConfirmDialog>
    </Card>
  );
}

function InviteDialog({ onClose }: { onClose: () => void }) {
  const [username, setUsername] = useState("");
  const [email, setEmail] = useState("");
  const [groups, setGroups] = useState("");
  const [days, setDays] = useState("7");
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formErr, setFormErr] = useState("");
  const [created, setCreated] = useState<CreateInvitationResponse | null>(null);
  const qc = useQueryClient();
  const m = useMutation({
    mutationFn: () => post<CreateInvitationResponse>("/api/invitations", { username, email, groups: splitList(groups), expiresInDays: Number(days) } satisfies CreateInvitationRequest),
    onSuccess: (r) => {
      setCreated(r);
      qc.invalidateQueries({ queryKey: keys.invitations });
    },
    onError: (e) => {
      const fe = formError(e, [[/username/i, "username"]]);
      setErrors(fe.fields);
      setFormErr(fe.form);
    },
  });
  if (created) {
    return (
      <Dialog open onClose={onClose} title={`Invitation for ${created.invitation.username}`} footer={<Button variant="primary" onClick={onClose}>Done</Button>}>
        <div className="space-y-4 text-sm">
          <Notice tone="warning" title="The link is shown only now">Send it to {created.invitation.email} over a channel you trust. It works once, until {formDateOrRelative(created.invitation.expiresAt)}.</Notice>
          {created.inviteUrl ? <CodeLine text={created.inviteUrl} label="invitation link" /> : <Notice tone="danger">No domain is set, so there is no invitation link.</Notice>}
        </div>
      </Dialog>
    );
  }
  return (
    <Dialog open onClose={onClose} title="Invite user">
      <form
        noValidate
        className="space-y-4"
        onSubmit={(e) => {
          e.preventDefault();
          const errs: FieldErrors = {};
          if (!patterns.username.test(username)) errs.username = "2–32 lower-case letters, digits, _ or -.";
          const em = checkEmail(email);
          if (em) errs.email = em;
          if (!/^\d+$/.test(days) || Number(days) < 1 || Number(days) > 30) errs.expiresInDays = "Between 1 and 30 days.";
          setErrors(errs);
          setFormErr("");
          if (!Object.keys(errs).length) m.mutate();
        }}
      >
        <TextField label="Username" name="username" autoFocus autoComplete="off" value={username} onChange={(v) => setUsername(v.toLowerCase())} error={errors.username} />
        <TextField label="E-mail" name="email" type="email" value={email} onChange={setEmail} error={errors.email} />
        <TextField label="Groups" name="groups" value={groups} onChange={setGroups} error={errors.groups} hint="Separated by commas." />
        <TextField label="Valid for (days)" name="expiresInDays" inputMode="numeric" value={days} onChange={setDays} error={errors.expiresInDays} />
        <FormActions error={formErr}>
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" loading={m.isPending}>
            Create invitation
          </Button>
        </FormActions>
      </form>
    </Dialog>
  );
}
