// A raw TCP upstream for framing tests: each connection is answered by `answer`, which
// writes whatever bytes it likes (interim responses, bad framing, FIN or RST at any point).
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export interface NetUpstream {
  url: string;
  /** Request heads received (the text up to the blank line), in order. */
  heads: string[];
  /** Connections accepted. */
  connections: number;
  answer: (socket: Socket, head: string, n: number) => void;
  close(): Promise<void>;
}

export async function startNetUpstream(answer: NetUpstream['answer']): Promise<NetUpstream> {
  const sockets = new Set<Socket>();
  const up: NetUpstream = {
    url: '',
    heads: [],
    connections: 0,
    answer,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  const server: Server = createServer((s) => {
    up.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      let end = buf.indexOf('\r\n\r\n');
      while (end !== -1) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        up.heads.push(head);
        up.answer(s, head, up.heads.length);
        end = buf.indexOf('\r\n\r\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return up;
}
