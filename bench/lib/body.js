// The fixed upstream response body: exactly 128 bytes.
export const BODY_128 = 'outrigger bench upstream: a fixed small response. '.repeat(3).slice(0, 127) + '\n';
if (Buffer.byteLength(BODY_128) !== 128) throw new Error('BODY_128 must be 128 bytes');
