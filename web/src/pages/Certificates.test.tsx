import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { ApiError } from "../api/client";
import { keys } from "../api/queries";
import type { Cert } from "../api/types.gen";
import { renderWithClient } from "../test/render";
import { Certificates, answerLost, renewal } from "./Certificates";

afterEach(() => vi.unstubAllGlobals());

test("a rotation whose answer was lost is told apart from a refusal", () => {
  expect(answerLost(new ApiError(0, {}, "The panel cannot be reached"))).toBe(true);
  // nginx's HTML page for the revoked certificate, its JSON answer, the panel's check.
  expect(answerLost(new ApiError(400, {}))).toBe(true);
  expect(answerLost(new ApiError(403, { error: "mTLS certificate required" }))).toBe(true);
  expect(answerLost(new ApiError(403, { error: "Certificate has been revoked" }))).toBe(true);
  // A failure the panel reports is not a lost answer.
  expect(answerLost(new ApiError(500, { error: "Failed to rotate admin certificate" }))).toBe(false);
  expect(answerLost(new ApiError(401, { error: "2fa_required" }))).toBe(false);
  expect(answerLost(new Error("x"))).toBe(false);
});

test("the renewal timer's state is explained", () => {
  const now = Date.parse("2026-06-01T12:00:00Z");
  expect(renewal({ active: false, nextRun: null, lastRun: null }, now)).toMatchObject({ tone: "red", label: "Off", text: expect.stringMatching(/systemctl enable --now portlama-certs-renew\.timer/) });
  const on = renewal({ active: true, nextRun: "2026-06-02T03:00:00Z", lastRun: "2026-05-31T03:00:00Z" }, now);
  expect(on.tone).toBe("green");
  expect(on.text).toMatch(/^Next check in 15 hours .*; last ran yesterday\. Certificates are renewed 30 days before they expire\.$/);
  expect(renewal({ active: true, nextRun: null, lastRun: null }, now)).toMatchObject({ tone: "amber", text: expect.stringMatching(/No next check is scheduled; it has not run yet/) });
});

test("Renew renews one ACME certificate and shows its new expiry; a failure stays at the row", async () => {
  const certs: Cert[] = [
    { type: "letsencrypt", domain: "app.example.com", expiresAt: "2026-07-01T00:00:00Z", daysUntilExpiry: 20, path: "/etc/x/app.pem", expiringSoon: true },
    { type: "letsencrypt", domain: "bad.example.com", expiresAt: "2026-08-01T00:00:00Z", daysUntilExpiry: 50, path: "/etc/x/bad.pem", expiringSoon: false },
    { type: "mtls-ca", domain: null, expiresAt: "2036-01-01T00:00:00Z", daysUntilExpiry: 3000, path: "/etc/x/ca.pem", expiringSoon: false },
  ];
  const posted: string[] = [];
  vi.stubGlobal(
    "fetch",
    vi.fn(async (path: string, init: RequestInit) => {
      if (init.method === "POST") posted.push(path);
      const body =
        path === "/api/certs/app.example.com/renew"
          ? { ok: true, domain: "app.example.com", newExpiry: "2026-09-29T00:00:00Z" }
          : path === "/api/certs/bad.example.com/renew"
            ? { error: "Certificate renewal failed", details: "acme: rate limited" }
            : path === "/api/certs/auto-renew-status"
              ? { active: true, nextRun: null, lastRun: null }
              : { certs };
      return new Response(JSON.stringify(body), { status: path.startsWith("/api/certs/bad") ? 500 : 200, headers: { "Content-Type": "application/json" } });
    }),
  );
  renderWithClient(<Certificates />, (qc) => qc.setQueryData(keys.certs, certs));
  const user = userEvent.setup();
  // Only ACME certificates can be renewed here.
  expect(screen.getAllByRole("button", { name: /^Renew / })).toHaveLength(2);
  await user.click(screen.getByRole("button", { name: "Renew app.example.com" }));
  expect(await screen.findByText(/app\.example\.com renewed: valid until/)).toBeInTheDocument();
  await user.click(screen.getByRole("button", { name: "Renew bad.example.com" }));
  expect(await screen.findByRole("alert")).toHaveTextContent("Certificate renewal failed: acme: rate limited");
  expect(posted).toEqual(["/api/certs/app.example.com/renew", "/api/certs/bad.example.com/renew"]);
  expect(await screen.findByText(/No next check is scheduled/)).toBeInTheDocument();
});
