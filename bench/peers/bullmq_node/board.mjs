// Serve bull-board (@bull-board/express over @bull-board/api's BullMQ adapter) for one
// BullMQ queue, as a BullMQ user runs it: `listen` on 127.0.0.1, the board at /. Prints
// {"listening": port} once it answers, then serves until SIGTERM.
import express from "express";
import { Queue } from "bullmq";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import { opts } from "../../loadgen/common.mjs";

const o = opts();
const queue = new Queue(o.queue || "bench", { connection: { host: o.host, port: o.port } });
await queue.waitUntilReady();
const serverAdapter = new ExpressAdapter();
serverAdapter.setBasePath("/");
createBullBoard({ queues: [new BullMQAdapter(queue)], serverAdapter });
const app = express();
app.use("/", serverAdapter.getRouter());
const server = app.listen(o.listen, "127.0.0.1", () =>
  console.log(JSON.stringify({ listening: o.listen })),
);
process.on("SIGTERM", () => {
  server.close();
  queue.close().finally(() => process.exit(0));
});
