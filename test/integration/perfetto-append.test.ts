// --append against a real recording: the kernel's own task_newtask and
// sched_process_free events, recorded by bpftrace on this machine while a
// snapshot in a child PID namespace saw a PID handed over (the probe hands
// the number over between the walk and the checkpoint), written as traced
// lays out a recording (test/helpers/perfetto-trace.ts: ClockSnapshot,
// tracing_started, per-cpu bundles with previous_bundle_end_timestamp).
// perfetto/traced is not installable here, so bpftrace is the recorder.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bpfGuardKernelGap } from '../../src/host/kernel.js';
import { nativeAddon } from '../../src/native/addon.js';
import { fromJSON } from '../../src/output/json.js';
import { appendPerfetto, PIDGEN_SEQUENCE_ID } from '../../src/output/perfetto.js';
import type { Snapshot } from '../../src/model/snapshot.js';
import { bpftraceSkipReason, wrapper } from '../helpers/bpftrace.js';
import { encodeRecording, packetsOf, RECORDER_SEQUENCE_ID, type RecordedEvent } from '../helpers/perfetto-trace.js';

const repo = join(import.meta.dirname, '..', '..');
const root = new protobuf.Root().loadSync(join(repo, 'proto', 'perfetto_subset.proto'), { keepCase: true });
const TraceType = root.lookupType('perfetto.protos.Trace');

interface Event {
  timestamp?: string;
  pid?: number;
  task_newtask?: { pid?: number; clone_flags?: string };
  sched_process_free?: { pid?: number };
}
interface Packet {
  timestamp?: string;
  trusted_packet_sequence_id?: number;
  clock_snapshot?: object;
  process_tree?: { processes?: { pid?: number; ppid?: number }[]; threads?: { tid?: number }[] };
  ftrace_events?: { cpu?: number; event?: Event[]; previous_bundle_end_timestamp?: string };
}
const decode = (bytes: Uint8Array) =>
  (TraceType.toObject(TraceType.decode(bytes), { longs: String }) as { packet?: Packet[] }).packet ?? [];

// bpftrace 0.17 has no boot clock: nsecs is CLOCK_MONOTONIC, converted with
// the offset measured here (BOOTTIME runs ahead by the time spent suspended).
const SCRIPT = `BEGIN { printf("READY\\n"); }
tracepoint:task:task_newtask { printf("N %llu %d %d %d %llu %s\\n", nsecs, cpu, tid, args->pid, args->clone_flags, args->comm); }
tracepoint:sched:sched_process_free { printf("F %llu %d %d %d\\n", nsecs, cpu, tid, args->pid); }
`;

const skip = bpftraceSkipReason ?? bpfGuardKernelGap();

function bootMinusMonotonic(): bigint {
  const before = process.hrtime.bigint();
  const boot = nativeAddon().boottimeNs();
  const after = process.hrtime.bigint();
  return boot - (before + after) / 2n;
}

/** ns PID → root PID for every task of the namespace, from the host's /proc. */
function rootPids(inum: number): Map<number, number> {
  const map = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/ns/pid`) !== `pid:[${inum}]`) continue;
      const nspid = /^NSpid:\s+(.+)$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1]?.trim().split(/\s+/).map(Number);
      if (nspid && nspid.length >= 2) map.set(nspid.at(-1)!, nspid[0]!);
    } catch {
      // gone since the readdir
    }
  }
  return map;
}

function parseRecorder(text: string, offset: bigint): RecordedEvent[] {
  const events: RecordedEvent[] = [];
  for (const line of text.split('\n')) {
    const n = /^N (\d+) (\d+) (\d+) (\d+) (\d+) (.*)$/.exec(line);
    if (n) {
      events.push({ ts: BigInt(n[1]!) + offset, cpu: Number(n[2]), pid: Number(n[3]), newTask: { pid: Number(n[4]), cloneFlags: BigInt(n[5]!), comm: n[6]! } });
      continue;
    }
    // (its comm is a __data_loc string, which bpftrace 0.17 cannot print)
    const f = /^F (\d+) (\d+) (\d+) (\d+)$/.exec(line);
    if (f) events.push({ ts: BigInt(f[1]!) + offset, cpu: Number(f[2]), pid: Number(f[3]), free: { pid: Number(f[4]), comm: '' } });
  }
  return events;
}

describe.skipIf(skip !== undefined)('[kernel] perfetto --append onto a real recording', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pidgen-append-'));
  let snapshot: Snapshot;
  let handOver: { pid: number; atNs: bigint };
  let rootOf: Map<number, number>;
  let events: RecordedEvent[];
  let recordingStartNs: bigint;

  beforeAll(async () => {
    const script = join(dir, 'record.bt');
    writeFileSync(script, SCRIPT);
    const offset = bootMinusMonotonic();
    const recorder: ChildProcess = spawn(wrapper, [script, '-B', 'line'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    recorder.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    recorder.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    try {
      const deadline = Date.now() + 60_000;
      while (!out.includes('READY')) {
        if (recorder.exitCode !== null || Date.now() > deadline) throw new Error(`bpftrace did not start (exit ${recorder.exitCode}): ${err} ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      recordingStartNs = nativeAddon().boottimeNs();

      const probe = spawn('unshare', ['-pfm', '--mount-proc', process.execPath, join(repo, 'test', 'helpers', 'reuse-during-snapshot.mjs'), '3'], {
        env: { ...process.env, REUSE_HOLD: '1' },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let probeOut = '';
      let probeErr = '';
      probe.stdout.on('data', (d: Buffer) => (probeOut += d.toString()));
      probe.stderr.on('data', (d: Buffer) => (probeErr += d.toString()));
      while (!probeOut.includes('\n')) {
        if (probe.exitCode !== null || Date.now() > deadline) throw new Error(`reuse probe failed: ${probeErr}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const report = JSON.parse(probeOut.split('\n')[0]!) as { oldPid: number; freshPid: number; snapshot: unknown };
      snapshot = fromJSON(JSON.stringify(report.snapshot));
      // Every task of the namespace is alive until stdin ends.
      rootOf = rootPids(snapshot.pidNamespace.inum);
      probe.stdin.end();
      await once(probe, 'exit');
      expect(report.freshPid).toBe(report.oldPid);
      const reuse = snapshot.reused.find((r) => r.pid === report.oldPid);
      expect(reuse, 'the probe handed the number over inside the window').toBeDefined();
      // The log saw who forked the new holder: the probe, PID 1 here.
      expect(reuse!.creator).toEqual({ pid: 1, tid: 1 });
      handOver = { pid: reuse!.pid, atNs: reuse!.atNs };
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      recorder.kill('SIGINT');
      if (recorder.exitCode === null) await once(recorder, 'exit');
    }
    events = parseRecorder(out, offset);
  }, 120_000);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const append = (recorded: readonly RecordedEvent[]) => {
    const clocks = { boottimeNs: recordingStartNs, monotonicNs: recordingStartNs - bootMinusMonotonic(), realtimeNs: BigInt(Date.now()) * 1_000_000n };
    const recording = encodeRecording(recorded, clocks, nativeAddon().boottimeNs());
    return { recording, combined: appendPerfetto(recording, snapshot, { rootPidOf: (nsPid) => rootOf.get(nsPid) }) };
  };
  const newTasksOf = (packets: Packet[], pid: number) =>
    packets.flatMap((p) => (p.ftrace_events?.event ?? []).filter((e) => e.task_newtask?.pid === pid).map((e) => ({ e, seq: p.trusted_packet_sequence_id })));

  it('the recorder saw the kernel create the new holder, after its start_boottime and inside the window', () => {
    const rootPid = rootOf.get(handOver.pid)!;
    expect(rootPid).toBeGreaterThan(0);
    const kernel = events.filter((e) => e.newTask?.pid === rootPid && e.ts >= handOver.atNs && e.ts <= snapshot.window.endNs);
    expect(kernel, JSON.stringify(events.filter((e) => e.newTask?.pid === rootPid), (_, v) => (typeof v === 'bigint' ? String(v) : v))).toHaveLength(1);
  });

  it("with the kernel's task_newtask in the recording: the ClockSnapshot stays first, the recording's packets are unchanged, and the hand-over has only the kernel's event", () => {
    const { recording, combined } = append(events);
    const packets = decode(combined);
    // The recording's ClockSnapshot is the only one, and pidgen's packets follow it.
    expect(packets.flatMap((p, i) => (p.clock_snapshot ? [[i, p.trusted_packet_sequence_id]] : []))).toEqual([[1, RECORDER_SEQUENCE_ID]]);
    expect(packets[2]!.trusted_packet_sequence_id).toBe(PIDGEN_SEQUENCE_ID);
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const before = packetsOf(recording).map(hex);
    expect(packetsOf(combined).map(hex).filter((p) => before.includes(p))).toEqual(before);

    const rootPid = rootOf.get(handOver.pid)!;
    const inWindow = newTasksOf(packets, rootPid).filter(({ e }) => BigInt(e.timestamp!) >= handOver.atNs && BigInt(e.timestamp!) <= snapshot.window.endNs);
    expect(inWindow.map((x) => x.seq)).toEqual([RECORDER_SEQUENCE_ID]);
    // The new holder is described after the kernel's event, with its real parent.
    const described = packets.filter((p) => p.trusted_packet_sequence_id === PIDGEN_SEQUENCE_ID && p.process_tree?.processes?.some((q) => q.pid === rootPid));
    expect(described).toHaveLength(1);
    expect(BigInt(described[0]!.timestamp!)).toBeGreaterThan(BigInt(inWindow[0]!.e.timestamp!));
    expect(described[0]!.process_tree!.processes!.find((q) => q.pid === rootPid)!.ppid).toBe(rootOf.get(1));
  });

  it("without it (a recording of frees only): pidgen writes the one task_newtask, from the real parent, in CPU 0's first bundle with the recording's previous_bundle_end_timestamp", () => {
    const frees = events.filter((e) => e.free);
    const { combined } = append(frees);
    const packets = decode(combined);
    const rootPid = rootOf.get(handOver.pid)!;
    const created = newTasksOf(packets, rootPid);
    expect(created).toHaveLength(1);
    expect(created[0]!.seq).toBe(PIDGEN_SEQUENCE_ID);
    expect(created[0]!.e.pid).toBe(rootOf.get(1));
    expect(created[0]!.e.timestamp).toBe(String(handOver.atNs));
    const cpu0 = packets.filter((p) => p.ftrace_events?.cpu === 0);
    expect(cpu0[0]!.trusted_packet_sequence_id).toBe(PIDGEN_SEQUENCE_ID);
    const recordedCpu0 = cpu0.find((p) => p.trusted_packet_sequence_id === RECORDER_SEQUENCE_ID);
    expect(cpu0[0]!.ftrace_events!.previous_bundle_end_timestamp).toBe(recordedCpu0?.ftrace_events?.previous_bundle_end_timestamp);
  });
});
