import { Link } from "wouter";
import { PageHeader } from "../components/ui";

export function NotFound() {
  return (
    <>
      <PageHeader title="Page not found" description="There is no page at this address." />
      <Link href="/" className="font-medium text-teal-700 underline dark:text-teal-400">
        Go to the dashboard
      </Link>
    </>
  );
}
