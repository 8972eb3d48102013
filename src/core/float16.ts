// IEEE 754 binary16 (half precision) conversion, for storing encoder features as Arrow Float16
// (which apache-arrow keeps as raw Uint16 bits). Node 20 has neither Math.f16round nor Float16Array.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * The binary16 bits nearest to a float32's bits, rounding to nearest, ties to even (as IEEE 754's
 * default and numpy's / PyTorch's `.half()`): overflow gives ±Infinity, NaN stays NaN (quiet, sign kept),
 * tiny values become subnormals or ±0.
 */
export function float32BitsToFloat16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x47800000) {
    // |x| ≥ 65536, Infinity or NaN. (65520 ≤ |x| < 65536 rounds up to Infinity in the normal path.)
    return sign | (abs > 0x7f800000 ? 0x7e00 | ((abs >>> 13) & 0x3ff) : 0x7c00);
  }
  if (abs >= 0x38800000) {
    // Normal half (|x| ≥ 2^-14): rebias the exponent and round the 13 dropped mantissa bits. A carry out
    // of the mantissa correctly bumps the exponent (up to Infinity for 65520 ≤ |x| < 65536).
    const odd = (abs >>> 13) & 1;
    return sign | ((abs - 0x38000000 + 0x0fff + odd) >>> 13);
  }
  // Subnormal half: the value in units of 2^-24, rounded. |x| = m · 2^(e − 150) with the implicit bit.
  const e = abs >>> 23;
  if (e < 102) return sign; // |x| < 2^-25: rounds to ±0 (2^-25 itself is a tie, to even 0)
  const m = (abs & 0x7fffff) | 0x800000;
  const shift = 126 - e; // 14..24
  let q = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (q & 1) === 1)) q++;
  return sign | q; // q = 0x400 (the smallest normal) when rounding carries over: still the right bits
}

/** binary16 bits of a number, rounded first to float32 (as a float32 tensor holds it), then to half. */
export function float32ToFloat16(value: number): number {
  f32[0] = value;
  return float32BitsToFloat16(u32[0]);
}

/** A float16's value (exact: every binary16 value is a float32). */
export function float16ToFloat32(bits: number): number {
  return FLOAT16_TABLE()[bits & 0xffff];
}

let table: Float32Array | undefined;

/** All 65,536 binary16 values, indexed by their bits (256 KiB, built once). */
function FLOAT16_TABLE(): Float32Array {
  if (table) return table;
  table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = mant * 2 ** -24;
    else if (exp === 31) v = mant === 0 ? Infinity : NaN;
    else v = (1024 + mant) * 2 ** (exp - 25);
    table[h] = sign * v;
  }
  // -0 keeps its sign above; NaN payloads are not kept (any quiet NaN will do for features).
  return table;
}

/** Converts float32 values to binary16 bits (round to nearest even) into `out` (default: a new array). */
export function float32ArrayToFloat16(values: Float32Array, out: Uint16Array = new Uint16Array(values.length)): Uint16Array {
  if (out.length < values.length) throw new RangeError(`output holds ${out.length} values, input has ${values.length}`);
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const n = values.length;
  for (let i = 0; i < n; i++) {
    const x = bits[i];
    const abs = x & 0x7fffffff;
    // The common case inline: a normal half.
    if (abs >= 0x38800000 && abs < 0x47800000) out[i] = ((x >>> 16) & 0x8000) | ((abs - 0x38000000 + 0x0fff + ((abs >>> 13) & 1)) >>> 13);
    else out[i] = float32BitsToFloat16(x);
  }
  return out;
}

/** Converts binary16 bits to float32 values into `out` (default: a new array). */
export function float16ArrayToFloat32(bits: Uint16Array, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  if (out.length < bits.length) throw new RangeError(`output holds ${out.length} values, input has ${bits.length}`);
  const t = FLOAT16_TABLE();
  const n = bits.length;
  for (let i = 0; i < n; i++) out[i] = t[bits[i]];
  return out;
}
