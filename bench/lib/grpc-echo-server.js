// The grpc-unary scenario's upstream: a @grpc/grpc-js server (h2c, insecure credentials) whose
// Unary method answers { text, n: n + 1 }. Usage: node grpc-echo-server.js --port P
import { parseArgs } from 'node:util';
import { grpc, loadEcho } from './grpc-common.js';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const Echo = loadEcho();
const server = new grpc.Server();
server.addService(Echo.service, {
  Unary(call, cb) {
    cb(null, { text: call.request.text, n: call.request.n + 1 });
  },
});
server.bindAsync(`127.0.0.1:${Number(values.port)}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`grpc echo server: ${err.message}\n`);
    process.exit(1);
  }
});
process.on('SIGTERM', () => {
  server.forceShutdown();
  process.exit(0);
});
