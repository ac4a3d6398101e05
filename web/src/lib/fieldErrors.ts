// Puts API errors next to the field they concern: validation issues by
// their path, and the routes' own 400/409 messages by what they name.
import { useState } from "react";
import { ApiError } from "../api/client";

export type FieldErrors = Record<string, string>;

/** A rule maps a route's error message to a field. */
export type MessageRule = [RegExp, string];

export interface FormError {
  fields: FieldErrors;
  /** What belongs to no field (shown above the buttons). */
  form: string;
}

export function formError(err: unknown, rules: MessageRule[] = []): FormError {
  if (!(err instanceof ApiError)) {
    return { fields: {}, form: err instanceof Error ? err.message : String(err ?? "") };
  }
  const fields: FieldErrors = {};
  const issues = err.issues;
  if (issues.length) {
    const rest: string[] = [];
    for (const is of issues) {
      const key = typeof is.path?.[0] === "string" ? (is.path[0] as string) : "";
      if (key && !fields[key]) fields[key] = is.message;
      else if (!key) rest.push(is.message);
    }
    return { fields, form: rest.length ? rest.join("; ") : Object.keys(fields).length ? "" : err.message };
  }
  for (const [re, field] of rules) {
    if (re.test(err.message)) {
      fields[field] = err.detail ? `${err.message}: ${err.detail}` : err.message;
      return { fields, form: "" };
    }
  }
  return { fields, form: err.detail ? `${err.message}: ${err.detail}` : err.message };
}

/** Client-side checks mirror the API's rules (docs/api.md, "Shared value rules"). */
export const patterns = {
  subdomain: /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/,
  username: /^[a-z0-9_-]{2,32}$/,
  group: /^[A-Za-z0-9._-]{1,64}$/,
  agentLabel: /^[a-z0-9][a-z0-9-]{0,49}$/,
  email: /^[^\s@]+@[^\s@]+\.[^\s@]{2,}$/,
  domain: /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/,
  targetHost: /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$|^(\d{1,3}\.){3}\d{1,3}$|^[0-9a-f:]+$/,
};

export const reservedSubdomains = ["panel", "auth", "tunnel", "www", "mail", "ftp", "api"];

export function checkSubdomain(s: string): string {
  if (!s) return "Enter a subdomain.";
  if (s.length > 63) return "At most 63 characters.";
  if (!patterns.subdomain.test(s)) return "Lower-case letters, digits and inner hyphens only.";
  if (s.slice(2, 4) === "--") return "No '--' in the third and fourth places (punycode look-alikes).";
  if (reservedSubdomains.includes(s)) return `'${s}' is reserved.`;
  if (s.startsWith("agent-")) return "The prefix 'agent-' is reserved for agent panels.";
  return "";
}

export function checkPort(s: string): string {
  if (!s) return "Enter the local port.";
  if (!/^\d+$/.test(s)) return "A whole number.";
  const n = Number(s);
  if (n < 1024 || n > 65535) return "Between 1024 and 65535.";
  return "";
}

export function checkEmail(s: string): string {
  if (!s) return "Enter an e-mail address.";
  if (s.length > 254 || !patterns.email.test(s)) return "Enter a valid address like you@example.com.";
  return "";
}

export function checkDomain(s: string): string {
  if (!s) return "Enter your domain.";
  if (/^https?:\/\//i.test(s)) return "Only the domain, without https://.";
  if (!patterns.domain.test(s)) return "A domain like example.com: letters, digits and hyphens, ending in a TLD.";
  return "";
}

export function splitList(s: string): string[] {
  return s
    .split(/[,\s]+/)
    .map((x) => x.trim())
    .filter(Boolean);
}

/**
 * useFormErrors holds a form's field errors and its other error; onError
 * (for a mutation) fills both from an API error with the form's rules.
 */
export function useFormErrors(rules: MessageRule[] = []) {
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formErr, setFormErr] = useState("");
  const onError = (e: unknown) => {
    const fe = formError(e, rules);
    setErrors(fe.fields);
    setFormErr(fe.form);
  };
  return { errors, setErrors, formErr, setFormErr, onError };
}
