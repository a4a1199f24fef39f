// A worker that opens a guard and never closes it: the addon's environment
// cleanup hook must release it when the worker ends.
import { parentPort } from 'node:worker_threads';
import { Guard } from '../../dist/src/guard/guard.js';

const guard = Guard.open({ pinned: 'never' });
parentPort.postMessage({ attach: guard.attach });
// Stay alive until the test terminates us: a worker that ran off its end
// could be gone (guard released) before a slow main thread looks, as it was
// under qemu's emulator on 6.1.
parentPort.on('message', () => {});
