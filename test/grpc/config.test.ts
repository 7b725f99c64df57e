// Load-time checks of the HTTP/2 and gRPC keys.
import { describe, expect, it } from 'vitest';
import { loadConfigText, type ConfigError } from '../../src/config/load.js';

function problemsOf(yaml: string): string[] {
  try {
    loadConfigText(yaml, '/tmp/outrigger-test.yaml');
    return [];
  } catch (err) {
    return (err as ConfigError).problems;
  }
}

describe('HTTP/2 and gRPC config checks', () => {
  it('refuses a grpc route on an http1 upstream, h2 without https, h2c with https', () => {
    const problems = problemsOf(
      'upstreams:\n  a: { endpoints: ["http://127.0.0.1:1"] }\n  b: { endpoints: ["http://127.0.0.1:2"], protocol: h2 }\n  c: { endpoints: ["https://127.0.0.1:3"], protocol: h2c }\nroutes:\n  - { name: r0, upstream: a, grpc: true }\n',
    );
    expect(problems).toHaveLength(3);
    expect(problems.join('\n')).toMatch(/routes\[0\]\.grpc: gRPC needs HTTP\/2/);
    expect(problems.join('\n')).toMatch(/upstreams\.b\.endpoints\[0\]: protocol h2 .* needs an https:\/\/ endpoint/);
    expect(problems.join('\n')).toMatch(/upstreams\.c\.endpoints\[0\]: protocol h2c .* needs an http:\/\/ endpoint/);
  });

  it('accepts gRPC names in retry.on and breaker.failOn, grpcMethods and fallback.grpc', () => {
    expect(
      problemsOf(
        'upstreams:\n  a: { endpoints: ["http://127.0.0.1:1"], protocol: h2c }\nroutes:\n  - { name: r0, upstream: a, grpc: true, retry: { on: [unavailable, cancelled, deadline-exceeded, internal, resource-exhausted], grpcMethods: [/p.S/M] }, breaker: { failOn: [unavailable] }, fallback: { grpc: { status: 14, message: later } } }\n',
      ),
    ).toEqual([]);
    expect(problemsOf('upstreams:\n  a: { endpoints: ["http://127.0.0.1:1"] }\nroutes:\n  - { name: r0, upstream: a, retry: { grpcMethods: [nope] } }\n').join('\n')).toMatch(/expected a gRPC method/);
  });
});
