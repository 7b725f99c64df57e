// The grpc-unary scenario's service definition, loaded once per process (server and load worker).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';

export const PROTO = fileURLToPath(new URL('./grpc-echo.proto', import.meta.url));

export function loadEcho() {
  const def = loader.loadSync(PROTO, { keepCase: true, defaults: true });
  return grpc.loadPackageDefinition(def).outrigger.bench.Echo;
}

export { grpc };
