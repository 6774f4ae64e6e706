// StoragePool: DESIGN.md §1. A libvirt pool: a directory or an LVM volume group.
import { z } from "zod";
import { API_VERSION, objectMeta, statusBase } from "./common.js";
import { absolutePath } from "./names.js";

export const storagePoolSpec = z
  .strictObject({
    type: z.enum(["dir", "logical"]).default("dir"),
    path: absolutePath.optional().meta({ description: "dir pools: the directory (created if missing)." }),
    volumeGroup: z
      .string()
      .regex(/^[A-Za-z0-9+_][A-Za-z0-9+_.-]{0,126}$/, { error: "must be an LVM volume group name" })
      .optional()
      .meta({ description: "logical pools: the volume group; default the pool's name." }),
    sourceDevices: z.array(absolutePath).optional().meta({ description: "logical pools: devices to build the volume group on if it does not exist." }),
    autostart: z.boolean().default(true),
  })
  .check((ctx) => {
    const spec = ctx.value;
    const issue = (path: string[], message: string) => ctx.issues.push({ code: "custom", input: spec, path, message });
    if (spec.type === "dir") {
      if (!spec.path) issue(["path"], "a dir pool needs path");
      if (spec.volumeGroup) issue(["volumeGroup"], "volumeGroup only goes with type: logical");
      if (spec.sourceDevices) issue(["sourceDevices"], "sourceDevices only goes with type: logical");
    } else if (spec.path) {
      issue(["path"], "a logical pool's path is /dev/<volumeGroup>; set volumeGroup instead");
    }
  });

export const poolPhases = ["Pending", "Building", "Starting", "Active", "Inactive", "Terminating", "Retained"] as const;

/** Every status field the controller writes; kvmctl writes no other (a unit test checks). */
export const storagePoolStatusFields = z.object({
  ...statusBase,
  phase: z.enum(poolPhases).optional(),
  uuid: z.string().optional(),
  state: z.string().optional(),
  capacity: z.number().optional(),
  allocation: z.number().optional(),
  available: z.number().optional(),
  path: z.string().optional(),
  volumes: z.number().int().optional(),
});

/** Status as read: parsed leniently (unknown fields kept), a hand edit never blocks the spec. */
export const storagePoolStatus = z.looseObject(storagePoolStatusFields.shape);

export const storagePool = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal("StoragePool"),
  metadata: objectMeta,
  spec: storagePoolSpec.prefault({}),
  status: storagePoolStatus.optional(),
});

export type StoragePool = z.infer<typeof storagePool>;
export type StoragePoolSpec = z.infer<typeof storagePoolSpec>;
export type StoragePoolStatus = z.infer<typeof storagePoolStatus>;
