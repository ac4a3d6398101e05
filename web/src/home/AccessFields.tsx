import type { AccessMode } from "../api/types.gen";
import { SelectField, TextField } from "../components/ui";
import { splitList } from "../lib/fieldErrors";

/** What an agent may choose: public is for an admin (the relay refuses it). */
export const accessOptions: { value: AccessMode; label: string }[] = [
  { value: "authenticated", label: "Signed-in users (password + code)" },
  { value: "restricted", label: "Only the users and groups listed" },
];

export interface Access {
  mode: AccessMode;
  users: string;
  groups: string;
}

export function accessFrom(mode: AccessMode | undefined, users?: string[] | null, groups?: string[] | null): Access {
  return { mode: mode === "public" ? "authenticated" : (mode ?? "authenticated"), users: (users ?? []).join(", "), groups: (groups ?? []).join(", ") };
}

/** The request fields of an access choice (lists only for restricted). */
export function accessRequest(a: Access) {
  return a.mode === "restricted"
    ? { accessMode: a.mode, allowedUsers: splitList(a.users), allowedGroups: splitList(a.groups) }
    : { accessMode: a.mode };
}

/** AccessFields chooses who can open a tunnel, with the allow-lists. */
export function AccessFields({ value, onChange }: { value: Access; onChange: (a: Access) => void }) {
  return (
    <div className="space-y-4">
      <SelectField
        label="Who can open it"
        name="accessMode"
        value={value.mode}
        onChange={(v) => onChange({ ...value, mode: v as AccessMode })}
        options={accessOptions}
        hint="Public access (no login) is for an admin to grant on the relay's panel."
      />
      {value.mode === "restricted" && (
        <>
          <TextField label="Allowed users" name="allowedUsers" value={value.users} onChange={(v) => onChange({ ...value, users: v })} hint="User names on the relay, separated by commas." />
          <TextField label="Allowed groups" name="allowedGroups" value={value.groups} onChange={(v) => onChange({ ...value, groups: v })} hint="Group names, separated by commas." />
        </>
      )}
    </div>
  );
}
