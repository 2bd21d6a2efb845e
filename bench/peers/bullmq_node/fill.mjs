// Pre-fill a BullMQ queue with `count` jobs over `chats` chats (addBulk of 1000), plain
// jobs (no priority) unless `priority` is given. Prints {"added": n, "seconds": s}.
import { Queue } from "bullmq";
import { emit, opts } from "../../loadgen/common.mjs";

const o = opts();
const queue = new Queue(o.queue || "bench", { connection: { host: o.host, port: o.port } });
await queue.waitUntilReady();
const chats = o.chats || 1000;
const t0 = performance.now();
let added = 0;
const pending = [];
for (let start = 0; start < o.count; start += 1000) {
  const jobs = [];
  for (let i = start; i < Math.min(o.count, start + 1000); i++) {
    const j = {
      name: "send",
      data: { chat_id: String(1_000_000 + (i % chats)), text: `benchmark message #${i}: your order has shipped` },
    };
    if (o.priority) j.opts = { priority: o.priority };
    jobs.push(j);
  }
  pending.push(queue.addBulk(jobs).then(() => (added += jobs.length)));
  if (pending.length >= 4) await pending.shift();
}
await Promise.all(pending);
const seconds = (performance.now() - t0) / 1000;
await queue.close();
emit({ added, seconds });
