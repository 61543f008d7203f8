// Everything the bench starts (servers, workerd, CPU pinning) registers how to undo it here, so that a
// failure or Ctrl-C still stops it, newest first.
const pending = [];

/** Registers `undo`; the returned function runs it now (once) and forgets it. */
export function onCleanup(undo) {
  const entry = { undo };
  pending.push(entry);
  return async () => {
    const index = pending.indexOf(entry);
    if (index < 0) return;
    pending.splice(index, 1);
    await undo();
  };
}

/** Runs every registered undo, newest first, ignoring their failures. */
export async function cleanupAll() {
  while (pending.length) {
    const { undo } = pending.pop();
    await Promise.resolve().then(undo).catch(() => {});
  }
}

process.on("SIGINT", () => void cleanupAll().finally(() => process.exit(130)));
process.on("SIGTERM", () => void cleanupAll().finally(() => process.exit(143)));
