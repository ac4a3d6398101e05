import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { renderWithClient } from "../test/render";
import { Onboarding, initialStep } from "./Onboarding";
import { setupCommand } from "./Agents";

afterEach(() => vi.unstubAllGlobals());

test("the wizard starts at the step the relay is in", () => {
  expect(initialStep("FRESH")).toBe(1);
  expect(initialStep("DOMAIN_SET")).toBe(2);
  expect(initialStep("DNS_READY")).toBe(2);
  expect(initialStep("PROVISIONING")).toBe(3);
});

test("domain step: checks in the browser first, then the API's answer at its field", async () => {
  const fetchMock = vi.fn(async () =>
    new Response(JSON.stringify({ error: "Validation failed", details: { issues: [{ path: ["email"], message: "Invalid e-mail address" }] } }), {
      status: 400,
      headers: { "Content-Type": "application/json" },
    }),
  );
  vi.stubGlobal("fetch", fetchMock);
  renderWithClient(<Onboarding status={{ status: "FRESH", domain: null, ip: "203.0.113.10", httpsPort: 443, panelIpUrl: "https://203.0.113.10:9292" }} onStay={() => {}} />);
  const user = userEvent.setup();
  await user.type(screen.getByLabelText("Domain"), "https://example.com");
  await user.click(screen.getByRole("button", { name: /Save & Continue/ }));
  expect(screen.getByText("Only the domain, without https://.")).toBeInTheDocument();
  expect(screen.getByText("Enter an e-mail address.")).toBeInTheDocument();
  expect(fetchMock).not.toHaveBeenCalled();
  expect(screen.getByLabelText("Domain")).toHaveAttribute("aria-invalid", "true");

  await user.clear(screen.getByLabelText("Domain"));
  await user.type(screen.getByLabelText("Domain"), "example.com");
  await user.type(screen.getByLabelText("E-mail"), "me@example.com");
  await user.click(screen.getByRole("button", { name: /Save & Continue/ }));
  expect(await screen.findByText("Invalid e-mail address")).toBeInTheDocument();
  expect(fetchMock).toHaveBeenCalledWith("/api/onboarding/domain", expect.objectContaining({ method: "POST", body: JSON.stringify({ domain: "example.com", email: "me@example.com" }) }));
});

test("DNS step lists the records to create with copy buttons", () => {
  renderWithClient(<Onboarding status={{ status: "DOMAIN_SET", domain: "example.com", ip: "203.0.113.10", httpsPort: 443, panelIpUrl: "https://203.0.113.10:9292" }} onStay={() => {}} />);
  expect(screen.getByLabelText("record name example.com")).toHaveTextContent("example.com");
  expect(screen.getByLabelText("record name *.example.com")).toHaveTextContent("*.example.com");
  expect(screen.getAllByLabelText(/^address for/)[0]).toHaveTextContent("203.0.113.10");
  expect(screen.getByRole("button", { name: "Copy record name *.example.com" })).toBeInTheDocument();
  expect(screen.getByRole("button", { name: /Continue/ })).toBeDisabled();
  expect(screen.getByRole("button", { name: /Back/ })).toBeInTheDocument();
});

test("the setup command pins the panel certificate only when enrolling by IP", () => {
  const tok = "a".repeat(64);
  expect(setupCommand(tok, "https://203.0.113.10:9292", "AB:CD")).toBe(`portlama-agent setup --token ${tok} --panel-url https://203.0.113.10:9292 --panel-fingerprint AB:CD`);
  expect(setupCommand(tok, "https://panel.example.com", "AB:CD")).toBe(`portlama-agent setup --token ${tok} --panel-url https://panel.example.com`);
});
