// A real WebSocket echo upstream (ws on node:http) for tests.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface WsUpstream {
  url: string;
  port: number;
  server: Server;
  wss: WebSocketServer;
  /** Sockets currently open to this upstream. */
  openSockets(): number;
  connections: WebSocket[];
  requests: IncomingMessage[];
  close(): Promise<void>;
}

export async function startWsUpstream(opts: { protocols?: string[]; onRequest?: (req: IncomingMessage, socket: Socket) => boolean } = {}): Promise<WsUpstream> {
  const server = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('upgrade required');
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => {
      for (const p of opts.protocols ?? []) if (offered.has(p)) return p;
      return false;
    },
  });
  const connections: WebSocket[] = [];
  const requests: IncomingMessage[] = [];
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    requests.push(req);
    if (opts.onRequest && !opts.onRequest(req, socket)) return;
    wss.handleUpgrade(req, socket, head, (ws) => {
      connections.push(ws);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    wss,
    connections,
    requests,
    openSockets: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        wss.close();
        server.close(() => r());
      }),
  };
}
