// Whether a process runs on this host, for the files a killed process leaves behind (the --out lock, a weight-cache
// entry's partial): signal 0 is the existence check, nothing is sent.

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, under another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
