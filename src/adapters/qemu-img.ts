// qemu-img through execa: only `info`, to learn an image's format and virtual size before
// importing it into a pool.
import { execa } from "execa";

export interface ImageInfo {
  format: string;
  virtualSize: number;
}

export async function imageInfo(file: string): Promise<ImageInfo> {
  const result = await execa("qemu-img", ["info", "--output=json", "--", file], { timeout: 60_000 });
  const info = JSON.parse(String(result.stdout)) as { format: string; "virtual-size": number };
  return { format: info.format, virtualSize: info["virtual-size"] };
}
