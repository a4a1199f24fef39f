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
import { packetsOf } from '../helpers/perfetto-trace.js';
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
  clock_snapshot?: { clocks: { clock_id: number; timestamp: string }[]; primary_trace_clock?: number };
  trusted_packet_sequence_id?: number;
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
    // A ClockSnapshot first, so the UI can show wall time.
    expect(packets[0]!.clock_snapshot?.clocks.map((c) => c.clock_id)).toEqual([6, 1, 3]);
    const baseline = packets[1]!;
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

  it("`pidgen snapshot --format perfetto -o FILE` writes a decodable trace; --append puts a baseline after the trace's ClockSnapshot and keeps every packet", () => {
    const file = join(dir, 'snap.pftrace');
    const first = runCli(['snapshot', '--format', 'perfetto', '-o', file]);
    expect(first.status, first.stderr).toBe(0);
    const onceBytes = readFileSync(file);
    const once = decode(onceBytes);
    expect(once[0]!.clock_snapshot).toBeDefined();
    expect(once.filter((p) => p.process_tree).length).toBeGreaterThanOrEqual(1);
    const firstStart = BigInt(once.find((p) => p.process_tree)!.timestamp!);

    const second = runCli(['snapshot', '--format', 'perfetto', '--append', '-o', file]);
    expect(second.status, second.stderr).toBe(0);
    const twiceBytes = readFileSync(file);
    const twice = decode(twiceBytes);
    expect(twice.length).toBeGreaterThan(once.length);
    // The first trace's ClockSnapshot stays first and is the only one; the
    // new baseline follows it; the earlier packets are all there, unchanged.
    expect(twice.filter((p) => p.clock_snapshot)).toHaveLength(1);
    expect(twice[0]).toEqual(once[0]);
    expect(BigInt(twice[1]!.timestamp!)).toBeGreaterThan(firstStart);
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const before = packetsOf(onceBytes).map(hex);
    const after = packetsOf(twiceBytes).map(hex);
    expect(after.filter((p) => before.includes(p))).toEqual(before);
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
