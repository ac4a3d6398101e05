import { formatDate, relativeTime } from "./format";

/** Within a month: "in 3 days"; beyond: the date. */
export function formDateOrRelative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return "—";
  const t = new Date(iso).getTime();
  return Math.abs(t - now) < 30 * 86400_000 ? relativeTime(iso, now) : formatDate(iso);
}
