// Access mode with the user and group pickers of a restricted tunnel.
import { useId } from "react";
import type { AccessMode } from "../api/types.gen";
import { useGroups, useUsers } from "../api/queries";
import { Checkbox, ErrorState, RadioCard, Spinner } from "./ui";

const modes: { value: AccessMode; label: string; description: string }[] = [
  { value: "authenticated", label: "Authenticated", description: "Any user of this relay, after password and two-factor code." },
  { value: "restricted", label: "Restricted", description: "Only the users and groups you pick below." },
  { value: "public", label: "Public", description: "Anyone on the internet, no login. Use for apps with their own sign-in." },
];

export interface Access {
  accessMode: AccessMode;
  allowedUsers: string[];
  allowedGroups: string[];
}

export function AccessPicker({ value, onChange, errors = {} }: { value: Access; onChange: (a: Access) => void; errors?: Record<string, string> }) {
  const name = useId();
  const groups = useGroups();
  return (
    <fieldset>
      <legend className="mb-2 text-sm font-medium">Who can open it</legend>
      <div className="grid gap-2 sm:grid-cols-3">
        {modes.map((m) => (
          <RadioCard key={m.value} name={name} value={m.value} checked={value.accessMode === m.value} onChange={() => onChange({ ...value, accessMode: m.value })} label={m.label} description={m.description} />
        ))}
      </div>
      {errors.accessMode && <p className="mt-1 text-xs font-medium text-red-700 dark:text-red-400">{errors.accessMode}</p>}
      {value.accessMode === "restricted" && (
        <div className="mt-3 grid gap-4 sm:grid-cols-2">
          <fieldset className="rounded-md p-3 ring-1 ring-zinc-200 dark:ring-zinc-800">
            <legend className="px-1 text-sm font-medium">Users</legend>
            <UserChecklist value={value.allowedUsers} onChange={(allowedUsers) => onChange({ ...value, allowedUsers })} />
            {errors.allowedUsers && <p className="mt-1 text-xs font-medium text-red-700 dark:text-red-400">{errors.allowedUsers}</p>}
          </fieldset>
          <fieldset className="rounded-md p-3 ring-1 ring-zinc-200 dark:ring-zinc-800">
            <legend className="px-1 text-sm font-medium">Groups</legend>
            {groups.isPending ? (
              <Spinner />
            ) : groups.isError ? (
              <ErrorState what="Groups" error={groups.error} retry={() => groups.refetch()} />
            ) : groups.data.length === 0 ? (
              <p className="text-sm text-zinc-600 dark:text-zinc-400">No groups yet: users get groups on the Users page.</p>
            ) : (
              <div className="max-h-48 space-y-2 overflow-y-auto">
                {groups.data.map((g) => (
                  <Checkbox key={g} label={g} checked={value.allowedGroups.includes(g)} onChange={(on) => onChange({ ...value, allowedGroups: toggle(value.allowedGroups, g, on) })} />
                ))}
              </div>
            )}
            {errors.allowedGroups && <p className="mt-1 text-xs font-medium text-red-700 dark:text-red-400">{errors.allowedGroups}</p>}
          </fieldset>
          {value.allowedUsers.length === 0 && value.allowedGroups.length === 0 && (
            <p className="text-xs text-amber-800 sm:col-span-2 dark:text-amber-300">With nobody picked, nobody can open this tunnel.</p>
          )}
        </div>
      )}
    </fieldset>
  );
}

const toggle = (list: string[], x: string, on: boolean) => (on ? [...list, x] : list.filter((y) => y !== x));

/** UserChecklist picks users of the relay (loading, error and empty states included). */
export function UserChecklist({ value, onChange }: { value: string[]; onChange: (users: string[]) => void }) {
  const users = useUsers();
  if (users.isPending) return <Spinner />;
  if (users.isError) return <ErrorState what="Users" error={users.error} retry={() => users.refetch()} />;
  if (users.data.length === 0) return <p className="text-sm text-zinc-600 dark:text-zinc-400">No users yet.</p>;
  return (
    <div className="max-h-48 space-y-2 overflow-y-auto">
      {users.data.map((u) => (
        <Checkbox key={u.username} label={u.username} description={u.displayname} checked={value.includes(u.username)} onChange={(on) => onChange(toggle(value, u.username, on))} />
      ))}
    </div>
  );
}

export function accessLabel(m: AccessMode | undefined) {
  return modes.find((x) => x.value === m)?.label ?? "Agent panel";
}
