import { render, screen } from "@testing-library/react";
import { ConnectionBadge, connection } from "./Connection";

test("connection state is shown only when the relay reports it", () => {
  expect(connection({ label: "nas" })).toEqual({ connected: undefined, connectedSince: undefined });
  expect(connection({ connected: null })).toEqual({ connected: undefined, connectedSince: undefined });
  expect(connection({ connected: true, connectedSince: "2026-01-01T10:00:00Z" })).toEqual({ connected: true, connectedSince: "2026-01-01T10:00:00Z" });

  const { container, rerender } = render(<ConnectionBadge of={{ label: "nas" }} />);
  expect(container).toBeEmptyDOMElement();
  rerender(<ConnectionBadge of={{ connected: false }} />);
  expect(screen.getByText("Disconnected")).toBeInTheDocument();
  rerender(<ConnectionBadge of={{ connected: true, connectedSince: "2026-01-01T10:00:00Z" }} />);
  expect(screen.getByText("Connected")).toBeInTheDocument();
  expect(screen.getByText(/^since /)).toBeInTheDocument();
});
