// Node sizes V8's young generation from the memory it may use. Under a memory limit of
// 512 MiB or less (a container's cgroup limit counts) V8 treats the process as a
// low-memory device and gives each semi-space 1 MiB, against 32 MiB without a limit.
// A proxy allocates ~20 KB per request, so at 1 MiB it scavenges every ~50 requests and
// promotes in-flight requests to the old generation: on Node 24 that measured ~50% more CPU
// per request inside a 256 MiB cgroup (bench/RESULTS.md, "The young generation in a
// container"). The flag is read once, when the isolate is created, so the process cannot
// fix it for itself; it can only say so at start-up.

/** The semi-space size the image passes (Dockerfile `NODE_OPTIONS`), in MiB. */
export const RECOMMENDED_SEMI_SPACE_MB = 16;

/** At or below this memory limit V8 picks its minimum (1 MiB) semi-space. */
export const LOW_MEMORY_LIMIT_BYTES = 512 * 1024 * 1024;

const FLAG = /(^|\s)--max-semi-space-size(=|\s|$)/;

export interface NodeHeapFacts {
  /** process.constrainedMemory(): the cgroup limit, or 0 / a huge number without one. */
  constrainedMemory: number;
  execArgv: readonly string[];
  nodeOptions: string | undefined;
}

/**
 * The start-up warning when V8 will run with its minimum young generation: a memory limit
 * of 512 MiB or less and no --max-semi-space-size on the command line or in NODE_OPTIONS.
 * null when there is nothing to say.
 */
export function youngGenerationWarning(f: NodeHeapFacts): string | null {
  const limit = f.constrainedMemory;
  if (!(limit > 0 && limit <= LOW_MEMORY_LIMIT_BYTES)) return null;
  if (FLAG.test(`${f.execArgv.join(' ')} ${f.nodeOptions ?? ''}`)) return null;
  const mib = Math.round(limit / (1024 * 1024));
  return (
    `memory limit ${mib} MiB: Node gives V8's young generation its minimum (1 MiB semi-spaces), ` +
    `which costs about half again as much CPU per request; start node with --max-semi-space-size=${RECOMMENDED_SEMI_SPACE_MB} ` +
    `(NODE_OPTIONS works; the image sets it)`
  );
}
