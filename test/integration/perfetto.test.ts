// Perfetto output of real snapshots: decoded with the shipped .proto and
// compared with the JSON snapshot of the same run, field by field.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { afterAll, describe, expect, it } from 'vitest';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { toJSONObject } from '../../src/output/json.js';
import { toPerfetto } from '../../src/output/perfetto.js';
import { snapshot } from '../../src/snapshot/snapshot.js';
import { runCli } from '../helpers/cli.js';
import { isRoot } from '../helpers/kernel.js';

const root = new protobuf.Root().loadSync(join(import.meta.dirname, '..', '..', 'proto', 'perfetto_subset.proto'), {
  keepCase: true,
});
const TraceType = root.lookupType('perfetto.protos.Trace');

interface DecodedProcess {
  pid: number;
  ppid?: number;
  uid?: number;
  cmdline: string[];
  cmdline_is_comm?: boolean;
  process_start_from_boot?: string;
  is_kthread?: boolean;
  nspid?: number[];
}
interface DecodedThread {
  tid: number;
  tgid: number;
  name?: string;
}
interface DecodedPacket {
  timestamp?: string;
  timestamp_clock_id?: number;
  process_tree?: { processes: DecodedProcess[]; threads: DecodedThread[]; collection_end_timestamp?: string };
  ftrace_events?: unknown;
}

function decode(bytes: Uint8Array): DecodedPacket[] {
  const trace = TraceType.toObject(TraceType.decode(bytes), { longs: String, arrays: true, defaults: false }) as {
    packet: DecodedPacket[];
  };
  return trace.packet;
}

describe.runIf(isRoot)('[kernel] perfetto output', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pidgen-perfetto-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the trace of a real snapshot matches the JSON of the same run, field by field', async () => {
    // The BPF guard needs Linux >= 5.12; the trace is the same with the cursor guard.
    const snap = await snapshot({ guard: bpfGuardKernelGap() ? 'cursor' : 'bpf' });
    const json = toJSONObject(snap);
    const packets = decode(toPerfetto(snap));
    const baseline = packets[0]!;
    expect(baseline.timestamp).toBe(json.window.startNs);
    expect(baseline.timestamp_clock_id).toBe(6); // BUILTIN_CLOCK_BOOTTIME
    const tree = baseline.process_tree!;
    expect(tree.collection_end_timestamp).toBe(json.window.endNs);

    // Every process that held its PID for the whole window (all of them,
    // unless something was reused) is in the tree with the same facts.
    const reusedPids = new Set(json.reused.map((r) => r.pid));
    const byPid = new Map(tree.processes.map((p) => [p.pid, p]));
    for (const process of json.processes) {
      if (reusedPids.has(process.pid)) continue;
      const decoded = byPid.get(process.pid);
      expect(decoded, `pid ${process.pid}`).toBeDefined();
      expect(decoded!.ppid ?? 0).toBe(process.ppid);
      if (process.uid !== null) expect(decoded!.uid).toBe(process.uid);
      expect(decoded!.process_start_from_boot).toBe(process.startNs);
      expect(decoded!.is_kthread ?? false).toBe(process.kernelThread);
      if (process.cmdline.length > 0) {
        expect(decoded!.cmdline).toEqual(process.cmdline);
        expect(decoded!.cmdline_is_comm ?? false).toBe(false);
      } else {
        expect(decoded!.cmdline).toEqual([process.comm]);
        expect(decoded!.cmdline_is_comm).toBe(true);
      }
      // Root namespace: pid is already the root PID, no nspid.
      expect(decoded!.nspid ?? []).toEqual([]);
      for (const thread of process.threads) {
        const t = tree.threads.find((x) => x.tid === thread.tid);
        expect(t, `tid ${thread.tid}`).toBeDefined();
        expect(t!.tgid).toBe(process.pid);
        expect(t!.name).toBe(thread.comm);
      }
    }
    expect(tree.processes.length).toBe(json.processes.length - reusedPids.size);
  });

  it('`pidgen snapshot --format perfetto -o FILE` writes a decodable trace; --append adds a baseline ahead of the existing packets', () => {
    const file = join(dir, 'snap.pftrace');
    const first = runCli(['snapshot', '--format', 'perfetto', '-o', file]);
    expect(first.status, first.stderr).toBe(0);
    const once = decode(readFileSync(file));
    expect(once.filter((p) => p.process_tree).length).toBeGreaterThanOrEqual(1);
    const firstStart = BigInt(once[0]!.timestamp!);

    const second = runCli(['snapshot', '--format', 'perfetto', '--append', '-o', file]);
    expect(second.status, second.stderr).toBe(0);
    const twice = decode(readFileSync(file));
    expect(twice.length).toBeGreaterThan(once.length);
    // The new baseline comes first; the earlier packets follow unchanged.
    expect(BigInt(twice[0]!.timestamp!)).toBeGreaterThan(firstStart);
    expect(twice.slice(twice.length - once.length)).toEqual(once);
  });

  it.each([
    [['snapshot', '--append', '-o', '/tmp/x.json'], /--append needs --format perfetto/],
    [['snapshot', '--format', 'perfetto', '--append'], /--append needs --format perfetto and -o FILE/],
  ])('pidgen %j is a usage error: exit 2', (args, message) => {
    const result = runCli(args);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(message);
  });
});
