#!/usr/bin/env node
// The `outrigger` command: run the proxy, or check a config file.
//   outrigger [--config FILE]            run
//   outrigger check FILE [--format json] validate; exit 0 valid, 1 invalid, 2 usage error
//   outrigger --version | --help
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { ConfigError, loadConfigFile, resolveConfigPath } from './config/load.js';
import { start } from './app.js';
import { watchParent } from './util/parent.js';

/** A repeat of the first stop signal within this long is a duplicate delivery, not a second signal. */
const DUPLICATE_SIGNAL_MS = 1000;

const USAGE = `Usage:
  outrigger [--config FILE]              run the proxy (config: --config, then $OUTRIGGER_CONFIG, then config/outrigger.yaml)
  outrigger check FILE [--format json]   validate a config file and exit
  outrigger --version                    print the version
  outrigger --help                       print this help

Exit codes of check: 0 valid, 1 invalid, 2 usage error.
Environment: OUTRIGGER_CONFIG, OUTRIGGER_LOG_LEVEL, OUTRIGGER_ADMIN_TOKEN.
`;

function version(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const pkg = JSON.parse(readFileSync(join(here, '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function usageError(msg: string): never {
  process.stderr.write(`outrigger: ${msg}\n\n${USAGE}`);
  process.exit(2);
}

function check(args: string[]): never {
  let file: string | undefined;
  let format: 'text' | 'json' = 'text';
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--format') {
      const f = args[++i];
      if (f !== 'json' && f !== 'text') usageError(`--format takes json or text, got ${f ?? 'nothing'}`);
      format = f;
    } else if (a.startsWith('--format=')) {
      const f = a.slice(9);
      if (f !== 'json' && f !== 'text') usageError(`--format takes json or text, got ${f}`);
      format = f;
    } else if (a.startsWith('-')) usageError(`unknown option ${a}`);
    else if (file === undefined) file = a;
    else usageError(`check takes one file, got another: ${a}`);
  }
  if (file === undefined) usageError('check needs a FILE');
  const path = resolveConfigPath(file);
  try {
    const loaded = loadConfigFile(path);
    const c = loaded.config;
    const breakers = new Set(c.routes.filter((r) => r.breaker.enabled).map((r) => r.breaker.name));
    const summary = { valid: true, file: path, hash: loaded.hash, routes: c.routes.length, upstreams: Object.keys(c.upstreams).length, breakers: breakers.size, problems: [], warnings: loaded.warnings };
    if (format === 'json') process.stdout.write(JSON.stringify(summary) + '\n');
    else {
      // Warnings (conflicting presets, a preset listed again) leave the config valid: exit 0.
      const w = loaded.warnings.length;
      process.stdout.write(`${path}: OK (${summary.routes} routes, ${summary.upstreams} upstreams, ${summary.breakers} breakers)${w ? `, ${w} warning${w === 1 ? '' : 's'}` : ''}\n`);
      for (const line of loaded.warnings) process.stdout.write(`  warning: ${line}\n`);
    }
    process.exit(0);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    if (format === 'json') process.stdout.write(JSON.stringify({ valid: false, file: path, problems: err.problems }) + '\n');
    else process.stdout.write(`${err.message}\n`);
    process.exit(1);
  }
}

async function run(args: string[]): Promise<void> {
  let configFlag: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--config' || a === '-c') {
      configFlag = args[++i];
      if (configFlag === undefined) usageError('--config needs a FILE');
    } else if (a.startsWith('--config=')) configFlag = a.slice(9);
    else usageError(`unknown argument ${a}`);
  }
  const configPath = resolveConfigPath(configFlag);
  // Under `npm start`/`npm run demo` the parent is npm (or the `sh -c` it runs the script
  // with). Remembered now, to notice when it goes away: see watchParent below.
  const parentPid = process.ppid;
  // A signal during start-up must not kill the process with node's default action: a stop
  // is remembered and honoured (a clean drain) once the listeners are up; a SIGHUP is moot,
  // since the config is being read right now.
  let earlyStop: NodeJS.Signals | null = null;
  const early = (sig: NodeJS.Signals) => {
    if (sig !== 'SIGHUP') earlyStop ??= sig;
  };
  process.on('SIGTERM', early);
  process.on('SIGINT', early);
  process.on('SIGHUP', early);
  let app;
  try {
    app = await start({ configPath });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`outrigger: invalid config\n${err.message}\n`);
      process.exit(1);
    }
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`outrigger: cannot start: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
    process.exit(1);
  }
  let stopping = false;
  let firstSignal: { sig: NodeJS.Signals; at: number } | null = null;
  const drainAndExit = () => {
    stopping = true;
    app.drain().then(
      () => {
        app.log.flush(() => process.exit(0));
        setTimeout(() => process.exit(0), 1000).unref();
      },
      (err: unknown) => {
        app.log.error({ err }, 'drain failed');
        process.exit(1);
      },
    );
  };
  const onStop = (sig: NodeJS.Signals) => {
    if (firstSignal !== null) {
      // One Ctrl-C under `npm start` arrives twice: the terminal signals the whole
      // foreground process group (npm and node), and npm forwards its own copy to its
      // child. A repeat of the same signal within a second is that copy, not a second
      // request to stop at once.
      if (sig === firstSignal.sig && Date.now() - firstSignal.at < DUPLICATE_SIGNAL_MS) {
        app.log.debug({ signal: sig }, 'repeated signal within 1s: already draining');
        return;
      }
      app.log.warn({ signal: sig }, 'second signal: exiting now');
      app.log.flush();
      process.exit(130);
    }
    firstSignal = { sig, at: Date.now() };
    if (stopping) return; // already draining because the parent went away
    app.log.info({ signal: sig }, 'shutting down');
    drainAndExit();
  };
  process.off('SIGTERM', early);
  process.off('SIGINT', early);
  process.off('SIGHUP', early);
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    app.reload().catch((err: unknown) => process.stderr.write(`outrigger: reload failed: ${err instanceof Error ? err.message : String(err)}\n`));
  });
  if (earlyStop !== null) onStop(earlyStop);
  // Started by npm (npm sets npm_lifecycle_event for every script it runs): if the parent,
  // npm or a `sh -c` between it and us, dies without passing a signal on (`kill -9` of npm,
  // a closed terminal, a shell that does not exec and dies of npm's forwarded SIGTERM),
  // the proxy would keep its ports with nobody left to stop it. So when this process is
  // re-parented, it drains and exits. (Not outside npm: in a container tini is the parent.)
  if (process.env.npm_lifecycle_event) watchParent(parentPid, () => {
    if (stopping || firstSignal !== null) return;
    app.log.info({ parentPid }, 'the parent process (npm) exited: shutting down');
    drainAndExit();
  });
}

const argv = process.argv.slice(2);
if (argv[0] === '--version' || argv[0] === '-v') {
  process.stdout.write(`outrigger ${version()}\n`);
} else if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
  process.stdout.write(USAGE);
} else if (argv[0] === 'check') {
  check(argv.slice(1));
} else {
  void run(argv);
}
