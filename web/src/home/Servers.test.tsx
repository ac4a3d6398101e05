import { screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import type { HomeSetupFrame, HomeStatus } from "../api/types.gen";
import { renderWithClient } from "../test/render";
import { addServerWithProgress } from "./queries";
import { ServersPage } from "./Servers";

const status: HomeStatus = { version: "test", keychain: "os" };

function ndjson(frames: HomeSetupFrame[]): Response {
  const enc = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      // Split mid-line, as a network does.
      const text = frames.map((f) => JSON.stringify(f) + "\n").join("");
      c.enqueue(enc.encode(text.slice(0, 25)));
      c.enqueue(enc.encode(text.slice(25)));
      c.close();
    },
  });
  return new Response(body, { status: 200, headers: { "Content-Type": "application/x-ndjson" } });
}

test("the stream's steps arrive in order; its error is thrown", async () => {
  vi.stubGlobal(
    "fetch",
    vi.fn(async () =>
      ndjson([
        { step: { step: "generate-key", status: "running", message: "Generating" } },
        { step: { step: "generate-key", status: "done", message: "Private key created" } },
        { step: { step: "enroll", status: "error", error: "token used" } },
        { error: "Invalid or expired token (HTTP 401)" },
      ]),
    ),
  );
  try {
    const seen: string[] = [];
    await expect(addServerWithProgress({ token: "t", panelUrl: "https://x" }, (s) => seen.push(`${s.step}:${s.status}`))).rejects.toThrow("Invalid or expired token");
    expect(seen).toEqual(["generate-key:running", "generate-key:done", "enroll:error"]);
  } finally {
    vi.unstubAllGlobals();
  }
});

test("adding a relay shows each step and the result", async () => {
  vi.stubGlobal(
    "fetch",
    vi.fn(async (url: string, init?: RequestInit) => {
      if (init?.method === "POST")
        return ndjson([
          { step: { step: "enroll", status: "running", message: "Enrolling with https://203.0.113.7:9292" } },
          { step: { step: "enroll", status: "done", message: "Enrolled as agent \"laptop\"" } },
          { done: { server: { id: "laptop", kind: "agent", panelUrl: "https://203.0.113.7:9292", addedAt: "", current: true }, steps: [] } },
        ]);
      const answer = url.endsWith("/status") ? status : { servers: [] };
      return new Response(JSON.stringify(answer), { status: 200, headers: { "Content-Type": "application/json" } });
    }),
  );
  try {
    renderWithClient(<ServersPage />, (qc) => {
      qc.setQueryData(["home", "status"], status);
      qc.setQueryData(["home", "servers"], { servers: [] });
    });
    await userEvent.type(screen.getByLabelText("Enrollment token"), "ab".repeat(32));
    await userEvent.type(screen.getByLabelText("Panel URL", { selector: 'input[name="panelUrl"]' }), "https://203.0.113.7:9292");
    await userEvent.click(screen.getByRole("button", { name: "Add relay" }));
    expect(await screen.findByText("Added laptop")).toBeInTheDocument();
    expect(screen.getByText(/Enrolled as agent "laptop"/)).toBeInTheDocument();
  } finally {
    vi.unstubAllGlobals();
  }
});
