import { screen, waitFor } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { HomeCloud, HomeCloudOptions } from "../api/types.gen";
import { renderWithClient } from "../test/render";
import { CloudPage } from "./Cloud";

const steps = ["keys", "upload-key", "create-droplet", "wait-address", "connect", "upload-binary", "install", "download-p12", "register", "delete-key", "done"];
const options: HomeCloudOptions = {
  regions: [
    {
      slug: "fra1",
      name: "Frankfurt 1",
      suggested: "s-1vcpu-512mb-10gb",
      sizes: [
        { slug: "s-1vcpu-512mb-10gb", memoryMb: 512, vcpus: 1, diskGb: 10, priceMonthly: 4, priceHourly: 0.00595 },
        { slug: "s-1vcpu-1gb", memoryMb: 1024, vcpus: 1, diskGb: 25, priceMonthly: 6, priceHourly: 0.00893 },
      ],
    },
  ],
};

type Handler = (method: string, url: string, body: unknown) => { status: number; body: unknown };

function stubAPI(h: Handler) {
  const calls: string[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init?: RequestInit) => {
      const method = init?.method ?? "GET";
      const body = init?.body ? JSON.parse(String(init.body)) : undefined;
      const shown = body && Object.keys(body).length ? " " + JSON.stringify(body) : "";
      calls.push(`${method} ${url}${shown}`);
      const r = h(method, url, body);
      return new Response(JSON.stringify(r.body), { status: r.status, headers: { "Content-Type": "application/json" } });
    }),
  );
  return calls;
}

afterEach(() => vi.unstubAllGlobals());

test("a refused token is explained and not saved; an accepted one leads to region and size with the price", async () => {
  let saved = false;
  const calls = stubAPI((method, url, body) => {
    if (url === "/api/home/cloud") return { status: 200, body: { tokenSaved: saved, steps, job: null, running: false, events: [] } satisfies HomeCloud };
    if (url === "/api/home/cloud/token") {
      if ((body as { token: string }).token !== "dop_v1_good")
        return { status: 400, body: { error: "DigitalOcean refused the API token (it is wrong, expired or revoked): create a token with read and write scope" } };
      saved = true;
      return { status: 200, body: { email: "me@example.com" } };
    }
    if (url === "/api/home/cloud/options") return { status: 200, body: options };
    if (url === "/api/home/cloud/provision" && method === "POST") return { status: 200, body: { tokenSaved: true, steps, job: null, running: true, events: [] } };
    return { status: 404, body: { error: "not found" } };
  });
  renderWithClient(<CloudPage />);
  await userEvent.type(await screen.findByLabelText("API token"), "dop_v1_wrong");
  await userEvent.click(screen.getByRole("button", { name: "Check and save" }));
  expect(await screen.findByText(/refused the API token/)).toBeInTheDocument();
  await userEvent.clear(screen.getByLabelText("API token"));
  await userEvent.type(screen.getByLabelText("API token"), "dop_v1_good");
  await userEvent.click(screen.getByRole("button", { name: "Check and save" }));
  expect(await screen.findByText("Token accepted for me@example.com")).toBeInTheDocument();
  // The cheapest 512 MB size is preselected, with its price.
  const size = (await screen.findByLabelText("Size")) as HTMLSelectElement;
  expect(size.value).toBe("s-1vcpu-512mb-10gb");
  expect(screen.getByText(/Costs \$4\.00 a month \(\$0\.00595 an hour\)/)).toBeInTheDocument();
  await userEvent.selectOptions(size, "s-1vcpu-1gb");
  expect(screen.getByText(/Costs \$6\.00 a month/)).toBeInTheDocument();
  await userEvent.clear(screen.getByLabelText("Name"));
  await userEvent.type(screen.getByLabelText("Name"), "home-relay");
  await userEvent.click(screen.getByRole("button", { name: "Create the relay" }));
  await waitFor(() => expect(calls).toContain('POST /api/home/cloud/provision {"name":"home-relay","region":"fra1","size":"s-1vcpu-1gb"}'));
});

test("a failed job shows where it stopped, that the droplet exists and what it costs, and offers resume and destroy", async () => {
  const failed: HomeCloud = {
    tokenSaved: true,
    steps,
    running: false,
    error: "provisioning stopped at step install: the SSH connection to the droplet was lost",
    job: { name: "home-relay", region: "fra1", size: "s-1vcpu-512mb-10gb", step: "install", error: "the SSH connection to the droplet was lost", dropletId: 504, ip: "203.0.113.10", priceHourly: 0.00595, priceMonthly: 4, port22Closed: false },
    events: [
      { step: "install", status: "progress", task: "firewall", taskStatus: "done", message: "Firewall: active" },
      { step: "install", status: "progress", task: "nginx", taskStatus: "running", message: "nginx" },
    ],
  };
  let state = failed;
  const calls = stubAPI((method, url) => {
    if (url === "/api/home/cloud") return { status: 200, body: state };
    if (url === "/api/home/cloud/resume") {
      state = { ...failed, running: true, error: undefined, job: { ...failed.job!, error: undefined } };
      return { status: 200, body: state };
    }
    if (url === "/api/home/cloud/destroy") return { status: 200, body: { tokenSaved: true, steps, running: false, job: null, events: [] } };
    return { status: 404, body: { error: `${method} ${url}` } };
  });
  renderWithClient(<CloudPage />);
  expect(await screen.findByText("Provisioning stopped")).toBeInTheDocument();
  expect(screen.getByText(/The droplet home-relay exists and costs \$0\.00595 an hour \(\$4\.00 a month\)/)).toBeInTheDocument();
  const progress = screen.getByRole("list", { name: "Provisioning progress" });
  expect(progress).toHaveTextContent("Install the relay");
  expect(screen.getByText("Firewall: active")).toBeInTheDocument();
  await userEvent.click(screen.getByRole("button", { name: "Destroy the droplet…" }));
  expect(await screen.findByRole("dialog")).toHaveTextContent("stops costing money");
  await userEvent.click(screen.getByRole("button", { name: "Cancel" }));
  await userEvent.click(screen.getByRole("button", { name: "Resume" }));
  await waitFor(() => expect(calls).toContain("POST /api/home/cloud/resume"));
  expect(calls).not.toContain("POST /api/home/cloud/destroy");
});

test("a finished relay offers to close port 22 only after a confirmation", async () => {
  const done: HomeCloud = {
    tokenSaved: true,
    steps,
    running: false,
    events: [],
    job: { name: "home-relay", region: "fra1", size: "s-1vcpu-512mb-10gb", step: "done", dropletId: 504, ip: "203.0.113.10", panelUrl: "https://203.0.113.10:9292", priceHourly: 0.00595, priceMonthly: 4, port22Closed: false },
  };
  const calls = stubAPI((_method, url) => {
    if (url === "/api/home/cloud") return { status: 200, body: done };
    if (url === "/api/home/cloud/close-port-22") return { status: 200, body: { ...done, job: { ...done.job!, port22Closed: true } } };
    return { status: 404, body: { error: url } };
  });
  renderWithClient(<CloudPage />);
  expect(await screen.findByText("The relay is ready")).toBeInTheDocument();
  await userEvent.click(screen.getByRole("button", { name: "Close port 22…" }));
  expect(calls).not.toContain("POST /api/home/cloud/close-port-22");
  await userEvent.click(await screen.findByRole("button", { name: "Close port 22" }));
  await waitFor(() => expect(calls).toContain("POST /api/home/cloud/close-port-22"));
});

test("without a relay binary the page says how to enable it", async () => {
  stubAPI(() => ({ status: 503, body: { error: "Provisioning is not available in this build (no relay binary to upload)." } }));
  renderWithClient(<CloudPage />);
  expect(await screen.findByText("Provisioning is not available")).toBeInTheDocument();
  expect(screen.getByText(/--relay-binary/)).toBeInTheDocument();
});
