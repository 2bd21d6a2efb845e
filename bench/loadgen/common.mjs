// Shared by the Node load generators: a closed-loop driver with a start barrier,
// warm-up, fixed measuring window and per-request latencies.
export function opts() {
  return JSON.parse(process.argv[2] || "{}");
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const MAX_REFUSED = 10_000;
const isRefused = (e) => e && e.code === 14 && String(e.details || "").includes("Stream refused");

// Run `concurrency` closed loops of `op(i)` (i: a global sequence number). Nothing is
// counted during `warmup` seconds; then completions and latencies over `duration` seconds.
// `startAt` (ms since the epoch) lines several processes up.
export async function drive({ op, concurrency, duration, warmup = 0.5, startAt = 0, perOp = 1 }) {
  if (startAt) await sleep(Math.max(0, startAt - Date.now()));
  const t0 = performance.now();
  const measureFrom = t0 + warmup * 1000;
  const measureTo = measureFrom + duration * 1000;
  let seq = 0;
  let done = 0;
  let errors = 0;
  let firstError = null;
  let refused = 0;
  const lat = [];
  async function loop() {
    while (performance.now() < measureTo) {
      const i = seq++;
      const s = performance.now();
      try {
        for (;;) {
          try {
            await op(i);
            break;
          } catch (e) {
            // A server short of CPU refuses new streams (HTTP/2 REFUSED_STREAM: the call never
            // started; grpc-js retries once by itself). A caller sends it again; the latency
            // counts the wait.
            if (!isRefused(e) || refused >= MAX_REFUSED) throw e;
            refused++;
            await sleep(5);
          }
        }
      } catch (e) {
        errors++;
        if (!firstError) firstError = String(e && e.stack ? e.stack : e);
        if (errors > 100) throw new Error(`too many errors: ${firstError}`);
        continue;
      }
      const e = performance.now();
      if (s >= measureFrom && e <= measureTo) {
        done += perOp;
        lat.push(Math.round((e - s) * 1000) / 1000);
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { ops: done, seconds: duration, latencies_ms: lat, errors, refused, first_error: firstError };
}

// Print the result and exit once it is flushed (a pipe write is asynchronous in Node).
export function emit(result) {
  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}
