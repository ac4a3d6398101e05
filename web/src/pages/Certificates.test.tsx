import { ApiError } from "../api/client";
import { answerLost } from "./Certificates";

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
