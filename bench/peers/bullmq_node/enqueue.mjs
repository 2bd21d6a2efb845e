// BullMQ (Node) producer: Queue.add (with priority) or Queue.addBulk of `batch`, closed loop.
import { Queue } from "bullmq";
import { drive, emit, opts } from "../../loadgen/common.mjs";

const o = opts();
const queue = new Queue(o.queue || "bench", { connection: { host: o.host, port: o.port } });
await queue.waitUntilReady();
const chats = o.chats || 1000;
const data = (i) => ({
  chat_id: String(1_000_000 + (i % chats)),
  text: `node${process.pid} benchmark message #${i}: your order has shipped`,
});
let op;
if (o.method === "add") {
  op = (i) => queue.add("send", data(i), { priority: o.priority ?? 1 });
} else if (o.method === "addBulk") {
  const n = o.batch || 500;
  op = (i) =>
    queue.addBulk(Array.from({ length: n }, (_, k) => ({ name: "send", data: data(i * n + k) })));
} else {
  throw new Error(`unknown method ${o.method}`);
}
const result = await drive({
  op,
  concurrency: o.concurrency || 64,
  duration: o.duration || 5,
  warmup: o.warmup ?? 0.5,
  startAt: o.startAt || 0,
  perOp: o.method === "addBulk" ? o.batch || 500 : 1,
});
await queue.close();
emit(result);
