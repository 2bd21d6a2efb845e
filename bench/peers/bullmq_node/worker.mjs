// BullMQ (Node) worker: each job is one sendMessage POST to the Bot API simulator
// (undici keep-alive through fetch). Runs until `expect` jobs completed or `timeout` s.
import { Worker } from "bullmq";
import { emit, opts } from "../../loadgen/common.mjs";

const o = opts();
const url = `${o.api}/bot${o.token}/sendMessage`;
let completed = 0;
let failed = 0;
const worker = new Worker(
  o.queue || "bench",
  async (job) => {
    const r = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ chat_id: job.data.chat_id, text: job.data.text }),
    });
    const body = await r.json();
    if (!body.ok) throw new Error(body.description || `HTTP ${r.status}`);
    return body.result.message_id;
  },
  {
    connection: { host: o.host, port: o.port },
    concurrency: o.concurrency || 64,
    // As notigate keeps only the last 100 completed jobs.
    removeOnComplete: { count: 100 },
    removeOnFail: { count: 1000 },
  },
);
worker.on("completed", () => completed++);
worker.on("failed", () => failed++);
const t0 = performance.now();
await new Promise((resolve) => {
  const timer = setInterval(() => {
    if (completed + failed >= o.expect || performance.now() - t0 > (o.timeout || 120) * 1000) {
      clearInterval(timer);
      resolve();
    }
  }, 20);
});
await worker.close();
emit({ completed, failed });
