import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { useState } from "react";
import { keys } from "../api/queries";
import { managedSite } from "../test/fixtures";
import { renderWithClient } from "../test/render";
import { SitePicker } from "./Agents";

function Harness({ initial, seen }: { initial: string[]; seen: (v: string[]) => void }) {
  const [v, setV] = useState(initial);
  return (
    <SitePicker
      value={v}
      onChange={(n) => {
        setV(n);
        seen(n);
      }}
    />
  );
}

test("the site picker lists the sites by name, keeps a stale pick removable", async () => {
  const seen: string[][] = [];
  renderWithClient(<Harness initial={["gone"]} seen={(v) => seen.push(v)} />, (qc) =>
    qc.setQueryData(keys.sites, [managedSite, { ...managedSite, id: "x", name: "blog", fqdn: "blog.example.com" }]),
  );
  const user = userEvent.setup();
  expect(screen.getByRole("checkbox", { name: "docs" })).not.toBeChecked();
  expect(screen.getByText("blog.example.com")).toBeInTheDocument();
  expect(screen.getByRole("checkbox", { name: "gone" })).toBeChecked();
  expect(screen.getByText("no such site any more")).toBeInTheDocument();
  await user.click(screen.getByRole("checkbox", { name: "docs" }));
  await user.click(screen.getByRole("checkbox", { name: "gone" }));
  expect(seen.at(-1)).toEqual(["docs"]);
});

test("without sites the picker says where to create one", () => {
  renderWithClient(<Harness initial={[]} seen={() => {}} />, (qc) => qc.setQueryData(keys.sites, []));
  expect(screen.getByRole("link", { name: "create one on the Sites page" })).toHaveAttribute("href", "/sites");
});
