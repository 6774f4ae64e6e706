// Typed failures of the host ports, so reconcilers decide on a kind of failure, never on an
// adapter's wording: the object is not there, libvirt is busy (retry), it already exists.
// `cause` carries the adapter's own error (virsh's command line and stderr).

export type HypervisorErrorKind = "not-found" | "busy" | "exists" | "other";

export class HypervisorError extends Error {
  constructor(
    message: string,
    readonly kind: HypervisorErrorKind,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "HypervisorError";
  }
}

export class NotFoundError extends HypervisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, "not-found", options);
    this.name = "NotFoundError";
  }
}

export class BusyError extends HypervisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, "busy", options);
    this.name = "BusyError";
  }
}

export class ExistsError extends HypervisorError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, "exists", options);
    this.name = "ExistsError";
  }
}

/** The typed error of a kind, with `cause`. */
export function hypervisorError(kind: HypervisorErrorKind, message: string, cause?: unknown): HypervisorError {
  const options = cause === undefined ? undefined : { cause };
  switch (kind) {
    case "not-found":
      return new NotFoundError(message, options);
    case "busy":
      return new BusyError(message, options);
    case "exists":
      return new ExistsError(message, options);
    case "other":
      return new HypervisorError(message, "other", options);
  }
}
