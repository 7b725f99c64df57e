// The load workers' side of the parent protocol (see load.js): say "ready", run the load once
// on "go", send its result (or the error) and exit.
export function serveLoad(run) {
  process.on('message', (msg) => {
    if (msg && msg.type === 'go') {
      run(msg.opts).then(
        (result) => process.send({ type: 'result', result }, () => process.exit(0)),
        (err) => process.send({ type: 'error', error: String(err && err.stack ? err.stack : err) }, () => process.exit(1)),
      );
    }
  });
  process.send({ type: 'ready' });
}
