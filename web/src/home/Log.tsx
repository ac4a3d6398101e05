import { Card, ErrorState, Loading, PageHeader } from "../components/ui";
import { useLogs } from "./queries";

export function LogPage() {
  const logs = useLogs();
  return (
    <>
      <PageHeader title="Log" description="The newest lines of the agent's log: connections, reconnects and changes." />
      <Card>
        {logs.isPending ? (
          <Loading />
        ) : logs.error ? (
          <ErrorState error={logs.error} retry={() => logs.refetch()} what="The log" />
        ) : logs.data.lines.length === 0 ? (
          <p className="text-sm text-zinc-600 dark:text-zinc-400">Nothing logged yet.</p>
        ) : (
          <pre tabIndex={0} aria-label="Log lines" className="max-h-[32rem] overflow-auto text-xs leading-relaxed whitespace-pre-wrap">
            {logs.data.lines.join("\n")}
          </pre>
        )}
      </Card>
    </>
  );
}
