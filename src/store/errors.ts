// The error the store throws when a file cannot be edited safely. Nothing was written then.
export class ManifestEditError extends Error {
  override name = "ManifestEditError";
}
