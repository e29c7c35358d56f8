/**
 * When, in one boot's kernel log, a livepatch went live and when the network came up. The times
 * are the kernel's own (seconds since it started), so the order does not depend on the console or
 * on the test driver.
 */
export interface BootOrder {
  /** Seconds since kernel start when the patch's transition completed (or it was enabled). */
  liveAt: number;
  liveLine: string;
  /** Seconds since kernel start when eth0's link came up; null if the log does not say. */
  netUpAt: number | null;
  netLine: string | null;
}

const LINE = /^\[\s*(\d+\.\d+)\]\s(.*)$/;

/** Reads `dmesg` output; undefined when the patch never went live in this boot. */
export function bootOrder(dmesg: string, module: string): BootOrder | undefined {
  const lines = dmesg
    .split('\n')
    .map((l) => LINE.exec(l.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ at: Number(m[1]), text: m[2] as string }));
  const complete = lines.find((l) => l.text.includes(`livepatch: '${module}': patching complete`));
  const enabled = lines.find((l) => l.text.includes(`livepatch: enabling patch '${module}'`));
  const live = complete ?? enabled;
  if (live === undefined) return undefined;
  const net = lines.find((l) => /\beth0\b.*\bLink is Up\b|ADDRCONF\(NETDEV_CHANGE\): eth0\b/.test(l.text));
  return { liveAt: live.at, liveLine: live.text, netUpAt: net?.at ?? null, netLine: net?.text ?? null };
}

/** The demo's line for it, which the demo test looks for. */
export function bootOrderLine(level: number, module: string, o: BootOrder & { netUpAt: number }): string {
  return (
    `level ${level} (${module}) re-applied before the network: live at ${o.liveAt.toFixed(2)} s, ` +
    `eth0 up at ${o.netUpAt.toFixed(2)} s (kernel log times), ${(o.netUpAt - o.liveAt).toFixed(2)} s earlier`
  );
}

export const BOOT_ORDER_LINE =
  /level (\d+) \((livegraft_[0-9a-f]{12}_l\d+)\) re-applied before the network: live at (\d+\.\d+) s, eth0 up at (\d+\.\d+) s/;
