import { formatBytes, formatDuration, formatPercent, hostURL, plural, ratio, relativeTime } from "./format";

test("bytes in powers of 1024", () => {
  expect(formatBytes(0)).toBe("0 B");
  expect(formatBytes(1023)).toBe("1023 B");
  expect(formatBytes(1536)).toBe("1.5 KB");
  expect(formatBytes(512 * 1024 * 1024)).toBe("512 MB");
  expect(formatBytes(25_276_071_936)).toBe("23.5 GB");
  expect(formatBytes(-1)).toBe("—");
  expect(formatBytes(NaN)).toBe("—");
});

test("durations like the services' uptime", () => {
  expect(formatDuration(45)).toBe("45s");
  expect(formatDuration(12 * 60)).toBe("12m");
  expect(formatDuration(5 * 3600 + 30 * 60)).toBe("5h 30m");
  expect(formatDuration(2 * 86400 + 5 * 3600 + 30 * 60)).toBe("2d 5h 30m");
  expect(formatDuration(86400)).toBe("1d 0h 0m");
});

test("percent, ratio, plural", () => {
  expect(formatPercent(12.345)).toBe("12.3%");
  expect(formatPercent(100)).toBe("100%");
  expect(formatPercent(0)).toBe("0%");
  expect(ratio(1, 4)).toBe(25);
  expect(ratio(5, 0)).toBe(0);
  expect(ratio(9, 4)).toBe(100);
  expect(plural(1, "tunnel")).toBe("1 tunnel");
  expect(plural(1000, "tunnel")).toBe("1,000 tunnels");
});

test("relative times", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  expect(relativeTime("2026-01-04T00:00:00Z", now)).toBe("in 3 days");
  expect(relativeTime("2025-12-31T22:00:00Z", now)).toBe("2 hours ago");
  expect(relativeTime("2026-01-01T00:09:00Z", now)).toBe("in 9 minutes");
  expect(relativeTime(null, now)).toBe("—");
  expect(relativeTime("garbage", now)).toBe("—");
});

test("links name the port only when it is not 443", () => {
  expect(hostURL("app.example.com", 443)).toBe("https://app.example.com/");
  expect(hostURL("app.example.com")).toBe("https://app.example.com/");
  expect(hostURL("app.demo.localhost", 8443)).toBe("https://app.demo.localhost:8443/");
});
