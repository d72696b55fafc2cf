// Runs the third-party ComfyUI client @saintno/comfyui-sdk against a dit4j server:
//   node client-check.mjs <server-url> <flux-workflow.json> <custom-sampler-workflow.json>
// Exits 0 and prints "CLIENT CHECK OK" when both workflows produce a PNG the client can download, with progress events
// and binary JPEG step previews (the SDK's b_preview) delivered.
import { readFileSync } from "node:fs";
import { ComfyApi, CallWrapper, PromptBuilder } from "@saintno/comfyui-sdk";

const [host, fluxPath, customPath] = process.argv.slice(2);
const fail = (msg) => { console.error("CLIENT CHECK FAILED: " + msg); process.exit(1); };
setTimeout(() => fail("timed out after 60 s"), 60000).unref();

const api = new ComfyApi(host, "node-client-check");
// The SDK's waitForReady does not wait for its WebSocket: a prompt queued before the socket is registered loses its
// first events (against ComfyUI too). Wait for the server's greeting (status with our sid), as ComfyUI's own clients do.
let greeted = false;
api.on("status", (e) => { if (e.detail?.sid) greeted = true; });
api.init();
await api.waitForReady();
while (!greeted) await new Promise((r) => setTimeout(r, 20));
console.log("connected to " + host);

const stats = await api.getSystemStats();
if (!Array.isArray(stats.devices) || stats.devices.length === 0) fail("system_stats has no devices: " + JSON.stringify(stats));
const samplers = await api.getSamplerInfo();
if (!samplers.sampler?.[0]?.includes("euler")) fail("KSampler sampler list lacks euler: " + JSON.stringify(samplers));

let totalPreviews = 0;
async function run(path, inputs, label) {
  let builder = new PromptBuilder(JSON.parse(readFileSync(path, "utf8")), Object.keys(inputs), ["images"]);
  for (const [key, target] of Object.entries(inputs)) builder = builder.setInputNode(key, target.path);
  builder = builder.setOutputNode("images", "11");
  for (const [key, target] of Object.entries(inputs)) builder = builder.input(key, target.value);
  let progressEvents = 0, previews = 0;
  const previewChecks = [];
  const result = await new CallWrapper(api, builder)
    .onPending((id) => console.log(label + ": queued " + id))
    .onStart((id) => console.log(label + ": started " + id))
    .onProgress(() => { progressEvents++; })
    .onPreview((blob) => {
      previews++;
      previewChecks.push(blob.arrayBuffer().then((b) => {
        const u = new Uint8Array(b);
        if (blob.type !== "image/jpeg" || u[0] !== 0xff || u[1] !== 0xd8) fail(label + ": preview is not a JPEG (" + blob.type + ", " + u.length + " bytes)");
      }));
    })
    .onFailed((err) => fail(label + ": " + err.name + " " + err.message + " " + JSON.stringify(err.cause ?? "")))
    .run();
  if (!result) fail(label + ": no result");
  const image = result.images?.images?.[0];
  if (!image) fail(label + ": no image in " + JSON.stringify(result));
  const response = await fetch(api.getPathImage(image));
  const bytes = new Uint8Array(await response.arrayBuffer());
  const png = bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
  if (response.status !== 200 || !png) fail(label + ": /view returned " + response.status + ", " + bytes.length + " bytes");
  await Promise.all(previewChecks);
  console.log(label + ": " + image.filename + " (" + bytes.length + " bytes, " + progressEvents + " progress events, " + previews + " previews)");
  totalPreviews += previews;
  return progressEvents;
}

const p1 = await run(fluxPath, { seed: { path: "9.inputs.seed", value: 31337 }, positive: { path: "4.inputs.text", value: "a lighthouse at dusk" } }, "flux KSampler");
const p2 = await run(customPath, { seed: { path: "20.inputs.noise_seed", value: 4711 } }, "flux SamplerCustomAdvanced + TeaCache/LoRA/Compile/Parallel");
if (p1 === 0 || p2 === 0) fail("no progress events were delivered");
if (totalPreviews === 0) fail("no binary preview frames were delivered");
const history = await api.getHistories(10);
if (Object.keys(history).length < 2) fail("history has fewer than 2 entries");
api.destroy();
console.log("CLIENT CHECK OK");
process.exit(0);
