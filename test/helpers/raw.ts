// Raw-socket HTTP/1.1 for edge tests: sends bytes exactly as written and reads until the
// peer closes (or a generous timeout), so malformed requests and framing are visible.
import { connect } from 'node:net';

export interface RawResult {
  /** Everything the peer sent, latin1. */
  text: string;
  /** Status of the first response line, 0 when none arrived. */
  status: number;
  /** The peer ended with FIN (true) or the socket errored/reset (false). */
  clean: boolean;
}

export function rawRequest(port: number, data: string | Buffer, timeoutMs = 10_000): Promise<RawResult> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let clean = true;
    const done = () => {
      clearTimeout(t);
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text);
      resolve({ text, status: m ? Number(m[1]) : 0, clean });
    };
    const t = setTimeout(() => s.destroy(), timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => {
      clean = false;
    });
    s.on('close', done);
    s.on('connect', () => s.write(data));
  });
}

/** A GET with `connection: close`, target written as is. */
export function rawGet(port: number, target: string, extraHeaders = ''): Promise<RawResult> {
  return rawRequest(port, `GET ${target} HTTP/1.1\r\nhost: app.local\r\nconnection: close\r\n${extraHeaders}\r\n`);
}
