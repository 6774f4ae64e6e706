// Name and identifier formats shared by the schemas. Each regex has a message that says
// what is allowed, because "Invalid string" helps nobody.
import { z } from "zod";

/** DNS-1123 label: the Kubernetes object name rule, also used as the libvirt name. */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export const dnsLabel = z
  .string()
  .max(63, { error: "must be at most 63 characters (a DNS-1123 label)" })
  .regex(DNS_LABEL, {
    error: "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
  });

/** Linux interface names: at most 15 bytes, no '/' or whitespace. */
export const interfaceName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/, {
    error: "must be a Linux interface name: 1-15 characters of letters, digits, '_', '.', '-'",
  });

/** libvirt volume names (file names in dir pools, LV names in logical pools). */
export const volumeName = z
  .string()
  .max(255)
  .regex(/^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/, {
    error: "must be a volume name: letters, digits, '_', '.', '+', '-', not starting with '.' or '-'",
  });

// No control characters and no trailing whitespace: such a path never compares equal to what
// libvirt reports back (it would be redefined on every pass), and reads wrong in a terminal.
export const absolutePath = z
  .string()
  .regex(/^\//, { error: "must be an absolute path" })
  .regex(/^[^\u0000-\u001f\u007f-\u009f]*$/, { error: "must not contain control characters" })
  .refine((p) => !/\s$/.test(p), { error: "must not end in whitespace" })
  .refine((p) => !p.split("/").includes(".."), { error: "must not contain '..'" });

export const macAddress = z
  .string()
  .regex(/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/, { error: "must be a MAC address like 52:54:00:12:34:56" })
  .refine((mac) => (parseInt(mac.slice(0, 2), 16) & 1) === 0, { error: "must be a unicast MAC address" });

export const port = z.number().int().min(1).max(65535);

// Kubernetes label syntax: optional DNS-subdomain prefix and '/', then a 63-char name.
const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isQualifiedName(key: string): boolean {
  const slash = key.indexOf("/");
  if (slash === -1) return LABEL_NAME.test(key);
  const prefix = key.slice(0, slash);
  return prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix) && LABEL_NAME.test(key.slice(slash + 1));
}

export const labelKey = z.string().refine(isQualifiedName, {
  error: "must be a qualified name: an optional DNS-subdomain prefix and '/', then up to 63 letters, digits, '-', '_', '.'",
});
export const labelValue = z.string().refine((v) => v === "" || LABEL_NAME.test(v), {
  error: "must be empty or up to 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit",
});
