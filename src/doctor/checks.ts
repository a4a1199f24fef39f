/**
 * What this host supports: the facts behind `pidgen doctor`. Attach points
 * are really loaded and attached (then closed), not guessed from versions.
 */
import { canLoadTracingBpf, effectiveCapabilities } from '../host/capabilities.js';
import { bpfGuardKernelGap, hasVmlinuxBtf, kernelAtLeast, kernelVersion, lockdownMode, VMLINUX_BTF_PATH } from '../host/kernel.js';
import { mountsOfType, readMounts } from '../host/mounts.js';
import { PidgenError } from '../errors.js';
import { ATTACH_ORDER, ATTACH_POINTS } from '../guard/guard.js';
import { nativeAddon, nativeAddonOrigin, type NativeAddon } from '../native/addon.js';
import { readPinned } from '../pin/pin.js';
import { chooseGuard, chooseSource } from '../snapshot/choose.js';

export type CheckStatus = 'ok' | 'fail' | 'warn' | 'info';

export interface DoctorCheck {
  name: string;
  status: CheckStatus;
  detail: string;
  /** One line of advice, for every check that is not ok. */
  advice?: string;
}

export interface DoctorReport {
  checks: DoctorCheck[];
  /** What `pidgen snapshot --guard auto` would use here. */
  guard: { kind: 'bpf'; attach: string; pinned: boolean } | { kind: 'cursor'; reason: string };
  /** What `pidgen snapshot --source auto` would use here. */
  source: { kind: 'bpf-iter'; cmdlineFrom: 'bpf' | 'procfs' } | { kind: 'procfs'; reason: string };
}

const RELEVANT_CAPS = ['CAP_BPF', 'CAP_PERFMON', 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE', 'CAP_SYS_RESOURCE'] as const;

function check(name: string, status: CheckStatus, detail: string, advice?: string): DoctorCheck {
  return advice && status !== 'ok' ? { name, status, detail, advice } : { name, status, detail };
}

function attachAdvice(kind: string, code: string, anyLoads: boolean, kernelGap: string | undefined): string {
  if (code === 'EINVAL' && kernelGap) return `${kernelGap}; snapshots use the cursor guard`;
  if (code === 'EPERM' && kind === 'fexit') {
    return anyLoads
      ? 'fentry/fexit is refused here (lockdown or no BPF trampoline); pidgen falls back to the next attach point, nothing to do'
      : 'fentry/fexit is refused here (lockdown or no BPF trampoline); see the task_newtask checks below';
  }
  if (code === 'EPERM') return 'run as root, or grant CAP_BPF and CAP_PERFMON';
  if (code === 'ENOENT' || code === 'ESRCH') return 'this kernel lacks the hook or its BTF; the other attach points may still work';
  return 'run `pidgen doctor --verbose` for the verifier log';
}

export function runDoctor(options: { verbose?: boolean } = {}): DoctorReport {
  const checks: DoctorCheck[] = [];

  const kernel = kernelVersion();
  const kernelOk = kernelAtLeast(kernel, 5, 8);
  const kernelGap = bpfGuardKernelGap(kernel);
  const features = [
    kernelGap ? 'no BPF atomic xchg before 5.12' : null,
    kernelAtLeast(kernel, 6, 9) ? 'pidfs inodes' : null,
    kernelAtLeast(kernel, 6, 14) ? 'per-namespace pid_max' : null,
  ].filter(Boolean);
  checks.push(
    check(
      'kernel',
      !kernelOk ? 'fail' : kernelGap ? 'warn' : 'ok',
      `${kernel.release}${features.length ? ` (${features.join(', ')})` : ''}`,
      kernelOk
        ? 'the BPF guard needs Linux >= 5.12; snapshots use the cursor guard here'
        : 'pidgen\'s BPF programs need Linux >= 5.8 with BTF (the BPF guard >= 5.12); snapshots use the cursor guard here',
    ),
  );

  const btf = hasVmlinuxBtf();
  checks.push(
    check('btf', btf ? 'ok' : 'fail', btf ? VMLINUX_BTF_PATH : `${VMLINUX_BTF_PATH} missing`, 'boot a kernel built with CONFIG_DEBUG_INFO_BTF=y'),
  );

  const held = effectiveCapabilities();
  const bpfAllowed = canLoadTracingBpf(held);
  checks.push(
    check(
      'capabilities',
      bpfAllowed ? 'ok' : 'fail',
      `uid ${process.getuid?.() ?? '?'}; ${RELEVANT_CAPS.map((c) => `${c}${held.has(c) ? '' : ' (no)'}`).join(', ')}`,
      'run as root (sudo), or grant CAP_BPF and CAP_PERFMON',
    ),
  );

  const lockdown = lockdownMode();
  if (lockdown !== undefined) checks.push(check('lockdown', 'info', lockdown));

  const mounts = readMounts();
  for (const [name, fsType, advice] of [
    ['bpffs', 'bpf', 'only needed to pin the counter across runs: mount -t bpf bpf /sys/fs/bpf'],
    ['tracefs', 'tracefs', 'only the bpftrace scripts need it: mount -t tracefs nodev /sys/kernel/tracing'],
  ] as const) {
    const points = mountsOfType(fsType, mounts);
    checks.push(check(name, points.length ? 'ok' : 'warn', points.length ? points.join(', ') : 'not mounted', advice));
  }

  let addon: NativeAddon | undefined;
  try {
    addon = nativeAddon();
    const origin = nativeAddonOrigin();
    const how = origin?.kind === 'prebuilt' ? `prebuilt for ${process.platform}-${process.arch}` : 'built from source';
    checks.push(check('native addon', 'ok', `loaded, ${how} (${origin?.path}; libbpf ${addon.libbpfVersion()})`));
  } catch (error) {
    const e = error as PidgenError;
    checks.push(check('native addon', 'fail', e.message, e.hint ?? 'run scripts/setup'));
  }

  // Really load each attach point: versions and config files lie, the
  // verifier does not.
  const results = ATTACH_ORDER.map((kind) => {
    if (!addon) return { kind, ok: false, code: 'ENOADDON', message: 'native addon not loaded' };
    try {
      addon.open({ attach: kind, verbose: options.verbose ?? false }).close();
      return { kind, ok: true, code: '', message: 'loads and attaches' };
    } catch (error) {
      const e = error as PidgenError;
      return { kind, ok: false, code: e.code ?? 'EIO', message: e.message };
    }
  });
  const usable = results.find((r) => r.ok);
  for (const r of results) {
    checks.push(
      check(
        `attach ${ATTACH_POINTS[r.kind]}`,
        r.ok ? 'ok' : usable ? 'warn' : 'fail',
        r.ok ? r.message : `refused: ${r.code}`,
        attachAdvice(r.kind, r.code, Boolean(usable), kernelGap),
      ),
    );
  }

  let pinned: ReturnType<typeof readPinned>;
  let pinError: string | undefined;
  try {
    pinned = addon ? readPinned() : undefined;
  } catch (error) {
    pinError = (error as Error).message;
  }
  checks.push(
    pinError
      ? check('pinned counter', 'warn', pinError, 'run `pidgen unpin`, then `pidgen pin`')
      : check(
          'pinned counter',
          'info',
          pinned ? `pinned since ${pinned.attachedAt.toISOString()} via ${pinned.attach}` : 'not pinned (`pidgen pin` keeps one across runs)',
        ),
  );

  // What a snapshot would get: the same choosers snapshot() calls.
  const verbose = options.verbose ?? false;
  const chosenSource = chooseSource('auto', '/proc', verbose);
  const source: DoctorReport['source'] = chosenSource.iterator
    ? { kind: 'bpf-iter', cmdlineFrom: chosenSource.iterator.cmdlineFrom }
    : { kind: 'procfs', reason: bpfAllowed ? (chosenSource.reason ?? 'procfs') : 'no privileges for BPF' };
  chosenSource.close();
  checks.push(
    source.kind === 'bpf-iter'
      ? check('task iterator', 'ok', `loads (argv from ${source.cmdlineFrom === 'bpf' ? 'the sleepable iterator' : '/proc: sleepable iterators need Linux >= 5.18'})`)
      : check('task iterator', 'warn', source.reason, 'snapshots use the slower /proc walk; it needs root and Linux >= 5.8'),
  );

  const chosenGuard = chooseGuard('auto', '/proc', verbose);
  const guard: DoctorReport['guard'] = chosenGuard.guard
    ? { kind: 'bpf', attach: chosenGuard.guard.attach, pinned: chosenGuard.guard.pinned }
    : { kind: 'cursor', // Root on an old kernel: the version is the reason. Otherwise the refusals.
        reason: (bpfAllowed ? kernelGap : undefined) ?? results.map((r) => `${ATTACH_POINTS[r.kind]}: ${r.code}`).join('; ') };
  chosenGuard.tracker.finish();
  chosenGuard.close();
  return { checks, guard, source };
}
