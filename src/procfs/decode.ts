/**
 * How pidgen turns process names and command lines into text.
 *
 * The kernel stores names and argv as bytes, not text: any process can put
 * any byte (except NUL) into its argv or its name. pidgen decodes them as
 * UTF-8 and never throws on bad bytes.
 *
 * - Valid UTF-8 is passed through exactly, including a leading byte-order
 *   mark.
 * - Each byte that is not part of a valid UTF-8 sequence becomes U+FFFD, and
 *   the field is marked `lossy` so you know the text is not the exact bytes.
 * - A process name (comm) is cut by the kernel to 15 bytes (TASK_COMM_LEN is
 *   16, with the NUL), and kernel thread names shown by /proc are cut to 63
 *   bytes. A cut can land inside a multibyte character, so an *incomplete*
 *   UTF-8 sequence at the very end of a name is the kernel's truncation, not
 *   corruption: it is dropped and the name is not marked lossy. Invalid bytes
 *   anywhere else still become U+FFFD and make it lossy.
 */

import { isUtf8 } from 'node:buffer';

export interface DecodedText {
  text: string;
  /** True when at least one byte was replaced by U+FFFD. */
  lossy: boolean;
}

const REPLACEMENT = '\uFFFD';

// ignoreBOM: TextDecoder strips a leading U+FEFF by default, which would
// silently change a valid name.
const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * The outcome of reading one UTF-8 sequence at an offset:
 * a byte length when valid, 'invalid', or 'incomplete' when every byte up to
 * the end of the input is a correct prefix of a longer sequence.
 */
type SequenceScan = number | 'invalid' | 'incomplete';

// Ranges from the Unicode Standard, Table 3-7 (well-formed UTF-8 byte
// sequences). The narrowed second-byte ranges after E0, ED, F0 and F4 reject
// overlong forms, UTF-16 surrogates and code points above U+10FFFF.
function scanSequence(bytes: Uint8Array, at: number): SequenceScan {
  const lead = bytes[at] ?? 0;
  if (lead < 0x80) return 1;
  let length: number;
  let secondMin = 0x80;
  let secondMax = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead === 0xe0) secondMin = 0xa0;
    if (lead === 0xed) secondMax = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead === 0xf0) secondMin = 0x90;
    if (lead === 0xf4) secondMax = 0x8f;
  } else {
    return 'invalid';
  }
  for (let i = 1; i < length; i++) {
    const next = bytes[at + i];
    if (next === undefined) return 'incomplete';
    const min = i === 1 ? secondMin : 0x80;
    const max = i === 1 ? secondMax : 0xbf;
    if (next < min || next > max) return 'invalid';
  }
  return length;
}

function decodeReplacing(bytes: Uint8Array, dropIncompleteTail: boolean): DecodedText {
  let text = '';
  let lossy = false;
  let runStart = 0;
  let at = 0;
  while (at < bytes.length) {
    const scan = scanSequence(bytes, at);
    if (typeof scan === 'number') {
      at += scan;
      continue;
    }
    text += utf8.decode(bytes.subarray(runStart, at));
    if (scan === 'incomplete' && dropIncompleteTail) {
      return { text, lossy };
    }
    // One U+FFFD per bad byte, so the count of replacements says how many
    // bytes could not be shown.
    text += REPLACEMENT;
    lossy = true;
    at += 1;
    runStart = at;
  }
  text += utf8.decode(bytes.subarray(runStart, at));
  return { text, lossy };
}

/** Decodes bytes as UTF-8, replacing each invalid byte with U+FFFD. */
export function decodeUtf8(bytes: Uint8Array): DecodedText {
  if (isUtf8(bytes)) return { text: utf8.decode(bytes), lossy: false };
  return decodeReplacing(bytes, false);
}

/**
 * Decodes a process or thread name. Stops at the first NUL, so the
 * fixed-size, NUL-padded `char comm[16]` a BPF program copies out of
 * task_struct decodes the same as the name read from /proc.
 */
export function decodeComm(bytes: Uint8Array): DecodedText {
  const nul = bytes.indexOf(0);
  const name = nul === -1 ? bytes : bytes.subarray(0, nul);
  if (isUtf8(name)) return { text: utf8.decode(name), lossy: false };
  return decodeReplacing(name, true);
}

// Buffer's own latin1 decoder, callable on any Uint8Array: for ASCII bytes
// it gives exactly what UTF-8 decoding gives.
export const latin1Slice = Buffer.prototype.latin1Slice;

/**
 * decodeComm for the `char comm[16]` at bytes[start, end): the common case
 * (ASCII) without a copy, else through decodeComm.
 */
export function decodeCommAt(bytes: Uint8Array, start: number, end: number): DecodedText {
  let nul = start;
  let ascii = true;
  for (; nul < end; nul++) {
    const byte = bytes[nul] ?? 0;
    if (byte === 0) break;
    if (byte >= 0x80) ascii = false;
  }
  if (ascii) return { text: latin1Slice.call(bytes, start, nul), lossy: false };
  return decodeComm(bytes.subarray(start, end));
}

