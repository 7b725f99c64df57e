// A plain node:http client for tests: it can set Host, send absolute-form targets, and
// never pools sockets, so every test closes what it opens.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';

export interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** True when the response body ended cleanly. */
  complete: boolean;
}

export interface ReqOpts {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Send the body with transfer-encoding: chunked. */
  chunked?: boolean;
}

export function req(baseUrl: string, opts: ReqOpts = {}): Promise<Res> {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        const done = (complete: boolean) =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), complete });
        res.on('end', () => done(res.complete));
        res.on('error', () => done(false));
        res.on('aborted', () => done(false));
      },
    );
    r.on('error', reject);
    if (opts.body !== undefined) {
      if (opts.chunked) {
        r.setHeader('transfer-encoding', 'chunked');
        r.write(opts.body);
      } else r.end(opts.body);
      if (opts.chunked) r.end();
    } else r.end();
  });
}
