// PLACEHOLDER until the WebSocket layer lands in this session.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Metrics } from '../admin/metrics.js';
import type { ProxyState } from './http.js';

export class WebSocketProxy {
  size = 0;
  constructor(
    readonly state: ProxyState,
    readonly metrics: Metrics,
  ) {}
  readonly handleUpgrade = (_req: IncomingMessage, socket: Duplex): void => {
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  };
  closeAll(_code: number, _reason: string): void {}
}
