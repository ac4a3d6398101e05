import { act, screen } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { keys } from "../api/queries";
import { renderWithClient } from "../test/render";
import { LogViewer, Services, appendLines, maxLines } from "./Services";

class FakeWS {
  static last: FakeWS | null = null;
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: (() => void) | null = null;
  constructor(public url: string) {
    FakeWS.last = this;
  }
  close() {}
  send(line: string) {
    this.onmessage?.({ data: JSON.stringify({ timestamp: "2026-01-01T10:00:00+0000", message: line }) });
  }
}

afterEach(() => vi.unstubAllGlobals());

test("the log keeps the last 1,000 lines", () => {
  const many = Array.from({ length: maxLines + 10 }, (_, i) => ({ timestamp: "", message: `l${i}` }));
  const kept = appendLines([], many);
  expect(kept).toHaveLength(maxLines);
  expect(kept[0].message).toBe("l10");
});

test("the viewer streams a service's log, pauses and resumes", async () => {
  vi.stubGlobal("WebSocket", FakeWS);
  renderWithClient(<LogViewer names={["nginx", "portlama-auth"]} selected="nginx" onSelect={() => {}} />);
  expect(FakeWS.last?.url).toMatch(/\/api\/services\/nginx\/logs$/);
  act(() => {
    FakeWS.last!.onopen?.();
    FakeWS.last!.send("started nginx");
  });
  expect(await screen.findByText(/started nginx/)).toBeInTheDocument();
  expect(screen.getByText("Live")).toBeInTheDocument();
  const user = userEvent.setup();
  await user.click(screen.getByRole("button", { name: "Pause" }));
  act(() => FakeWS.last!.send("while paused"));
  expect(await screen.findByRole("button", { name: "Resume (1 new)" })).toBeInTheDocument();
  expect(screen.queryByText(/while paused/)).toBeNull();
  await user.click(screen.getByRole("button", { name: "Resume (1 new)" }));
  expect(screen.getByText(/while paused/)).toBeInTheDocument();
});

test("a relay without the services API says so instead of failing", () => {
  renderWithClient(<Services />, (qc) => qc.setQueryData(keys.services, null));
  expect(screen.getByText("Service control is not available on this relay yet")).toBeInTheDocument();
});

test("the panel cannot be stopped from the UI", () => {
  vi.stubGlobal("WebSocket", FakeWS);
  renderWithClient(<Services />, (qc) =>
    qc.setQueryData(keys.services, [
      { name: "nginx", status: "active", uptime: "2d 5h 30m" },
      { name: "portlama-panel", status: "active", uptime: "5h" },
    ]),
  );
  expect(screen.getByRole("button", { name: "Stop portlama-panel" })).toBeDisabled();
  expect(screen.getByRole("button", { name: "Stop nginx" })).toBeEnabled();
  expect(screen.getByText("Up for 2d 5h 30m")).toBeInTheDocument();
});
