import { ApiError } from "../api/client";
import { checkDomain, checkEmail, checkPort, checkSubdomain, formError, splitList } from "./fieldErrors";

test("validation issues land on their field", () => {
  const err = new ApiError(400, {
    error: "Validation failed",
    details: { issues: [{ path: ["port"], message: "Expected integer" }, { path: ["allowedUsers", 1], message: "Duplicate" }, { path: [], message: "Body required" }] },
  });
  const fe = formError(err);
  expect(fe.fields).toEqual({ port: "Expected integer", allowedUsers: "Duplicate" });
  expect(fe.form).toBe("Body required");
});

test("route messages are matched to the field they name", () => {
  const rules: [RegExp, string][] = [[/^Subdomain/, "subdomain"], [/^Port \d+/, "port"]];
  expect(formError(new ApiError(400, { error: "Subdomain 'app' is already in use" }), rules)).toEqual({ fields: { subdomain: "Subdomain 'app' is already in use" }, form: "" });
  expect(formError(new ApiError(400, { error: "Port 8080 is already in use by another tunnel" }), rules).fields.port).toMatch(/8080/);
  // Anything else is a form-level error, with its details.
  expect(formError(new ApiError(500, { error: "Failed to create tunnel", details: "nginx: test failed" }), rules)).toEqual({ fields: {}, form: "Failed to create tunnel: nginx: test failed" });
  expect(formError(new Error("boom")).form).toBe("boom");
});

test("client-side checks mirror the API's rules", () => {
  expect(checkSubdomain("app")).toBe("");
  expect(checkSubdomain("")).not.toBe("");
  expect(checkSubdomain("App")).not.toBe("");
  expect(checkSubdomain("-a")).not.toBe("");
  expect(checkSubdomain("xn--80ak6aa92e")).toMatch(/punycode/);
  expect(checkSubdomain("panel")).toMatch(/reserved/);
  expect(checkSubdomain("agent-x")).toMatch(/agent-/);
  expect(checkSubdomain("a".repeat(64))).toMatch(/63/);
  expect(checkPort("8080")).toBe("");
  expect(checkPort("80")).not.toBe("");
  expect(checkPort("8080.5")).not.toBe("");
  expect(checkPort("65536")).not.toBe("");
  expect(checkDomain("example.com")).toBe("");
  expect(checkDomain("home.Example.org")).toBe("");
  expect(checkDomain("https://example.com")).toMatch(/https/);
  expect(checkDomain("localhost")).not.toBe("");
  expect(checkEmail("me@example.com")).toBe("");
  expect(checkEmail("me@")).not.toBe("");
  expect(splitList(" family, friends  admins,,")).toEqual(["family", "friends", "admins"]);
});
