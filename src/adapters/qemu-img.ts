// The ImageTool port with qemu-img through execa: `info` to learn an image's format and virtual
// size before importing it into a pool, and `convert` when the volume wants another format.
import { execa } from "execa";
import type { ImageInfo, ImageTool } from "../ports/index.js";

export class QemuImg implements ImageTool {
  async info(file: string): Promise<ImageInfo> {
    // Without --backing-chain, qemu-img opens no backing file: the image alone is read.
    const result = await execa("qemu-img", ["info", "--output=json", "--", file], { timeout: 60_000 });
    const info = JSON.parse(String(result.stdout)) as { format: string; "virtual-size": number; "backing-filename"?: string; "format-specific"?: { data?: { "data-file"?: string } } };
    const backingFile = info["backing-filename"] ?? info["format-specific"]?.data?.["data-file"];
    return { format: info.format, virtualSize: info["virtual-size"], ...(backingFile !== undefined ? { backingFile } : {}) };
  }

  async convert(source: string, sourceFormat: string, target: string, targetFormat: "qcow2" | "raw"): Promise<void> {
    // -n: the target exists (libvirt made it, with the owner and size it wants); never recreate it.
    await execa("qemu-img", ["convert", "-n", "-f", sourceFormat, "-O", targetFormat, "--", source, target], { timeout: 30 * 60_000 });
  }
}
