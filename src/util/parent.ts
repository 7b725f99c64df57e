// A process started by npm must not outlive it: npm forwards SIGTERM/SIGINT only to its
// direct child, and nothing at all when it is killed with SIGKILL or loses its terminal.

const PARENT_POLL_MS = 500;

/** Calls onGone (once) when this process's parent is no longer parentPid. */
export function watchParent(parentPid: number, onGone: () => void): void {
  const check = () => {
    if (process.ppid === parentPid) return;
    clearInterval(timer);
    onGone();
  };
  const timer = setInterval(check, PARENT_POLL_MS);
  timer.unref();
  check(); // the parent may already have gone during start-up
}
