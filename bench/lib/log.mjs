// Progress lines on the console, stamped with the seconds since the bench started.
const started = Date.now();

export const elapsedSeconds = () => (Date.now() - started) / 1000;

export const say = (line) => console.log(`[bench ${elapsedSeconds().toFixed(0).padStart(3)}s] ${line}`);
