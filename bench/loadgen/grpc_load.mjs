// gRPC load generator (Node, @grpc/grpc-js): one process, `concurrency` requests in flight.
// Methods: "send" (NotificationService/Send), "batch" (SendBatch of `batch`), "health"
// (grpc.health.v1 Health/Check, the no-op floor). With `bots` (names), call i goes to
// bots[i % bots.length] (a batch: every message of it). Prints one JSON line.
import path from "node:path";
import { fileURLToPath } from "node:url";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";
import { drive, emit, opts } from "./common.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "..", "..");
const o = opts();
const loadOpts = { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true };
const api = grpc.loadPackageDefinition(
  protoLoader.loadSync(path.join(root, "proto/notigate/v1/notification.proto"), {
    ...loadOpts,
    includeDirs: [path.join(root, "proto")],
  }),
);
const healthApi = grpc.loadPackageDefinition(
  protoLoader.loadSync(path.join(here, "health.proto"), loadOpts),
);
const chats = o.chats || 1000;
const prefix = o.prefix || `n${process.pid}`;
const bots = o.bots || [];
const botOf = (i) => (bots.length ? { bot: bots[i % bots.length] } : {});
const msg = (i, bot = botOf(i)) => ({
  chat_id: String(1_000_000 + (i % chats)),
  text: `${prefix} benchmark message #${i}: your order has shipped`,
  priority: o.priority || 0,
  ...bot,
});

const callOptions = () => ({ deadline: Date.now() + 30_000 });
let op;
if (o.method === "health") {
  const client = new healthApi.grpc.health.v1.Health(o.target, grpc.credentials.createInsecure());
  op = () =>
    new Promise((res, rej) => client.Check({ service: "" }, callOptions(), (e, r) => (e ? rej(e) : res(r))));
} else {
  const client = new api.notigate.v1.NotificationService(o.target, grpc.credentials.createInsecure());
  if (o.method === "send") {
    op = (i) => new Promise((res, rej) => client.Send(msg(i), callOptions(), (e, r) => (e ? rej(e) : res(r))));
  } else if (o.method === "batch") {
    const n = o.batch || 500;
    op = (i) => {
      const messages = Array.from({ length: n }, (_, k) => msg(i * n + k, botOf(i)));
      return new Promise((res, rej) =>
        client.SendBatch({ messages }, callOptions(), (e, r) => (e ? rej(e) : res(r))),
      );
    };
  } else {
    throw new Error(`unknown method ${o.method}`);
  }
}
const result = await drive({
  op,
  concurrency: o.concurrency || 64,
  duration: o.duration || 5,
  warmup: o.warmup ?? 0.5,
  startAt: o.startAt || 0,
  perOp: o.method === "batch" ? o.batch || 500 : 1,
});
emit(result);
