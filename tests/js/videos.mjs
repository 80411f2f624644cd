// The official `openai` Node SDK against the gateway's /v1/videos: create (multipart), poll
// until completed, download the MP4. Run by tests/test_openai_node.py; also by hand:
//   node videos.mjs [BASE_URL] [API_KEY]        (or OPENAI_BASE_URL / OPENAI_API_KEY)
// Prints one JSON summary line on stdout and exits 0; on any failure prints the error on stderr
// and exits 1.
import OpenAI from "openai";

const POLL_TIMEOUT_MS = 30_000;
const POLL_INTERVAL_MS = 100;

async function main() {
  const baseURL = process.argv[2] ?? process.env.OPENAI_BASE_URL;
  const apiKey = process.argv[3] ?? process.env.OPENAI_API_KEY;
  if (!baseURL || !apiKey) {
    throw new Error("usage: node videos.mjs BASE_URL API_KEY (or OPENAI_BASE_URL, OPENAI_API_KEY)");
  }
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 20_000 });

  const created = await client.videos.create({
    model: "sora-2",
    prompt: "a paper boat drifting down a rain gutter, from the Node SDK",
    size: "1280x720",
    seconds: "8",
  });
  if (!created.id) throw new Error(`create returned no id: ${JSON.stringify(created)}`);

  const deadline = Date.now() + POLL_TIMEOUT_MS;
  let video = created;
  let polls = 0;
  while (video.status !== "completed") {
    if (video.status === "failed") {
      throw new Error(`video ${video.id} failed: ${JSON.stringify(video.error)}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`video ${video.id} still ${video.status} after ${POLL_TIMEOUT_MS} ms`);
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_INTERVAL_MS));
    video = await client.videos.retrieve(created.id);
    polls += 1;
  }

  const response = await client.videos.downloadContent(video.id);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const boxType = Buffer.from(bytes.subarray(4, 8)).toString("latin1");
  if (boxType !== "ftyp") {
    throw new Error(`downloaded ${bytes.length} bytes that are not an MP4 (bytes 4-8: ${boxType})`);
  }

  console.log(JSON.stringify({
    id: video.id,
    created_status: created.status,
    status: video.status,
    model: video.model,
    size: video.size,
    seconds: video.seconds,
    progress: video.progress,
    polls,
    content_type: response.headers.get("content-type"),
    bytes: bytes.length,
    box: boxType,
  }));
}

main().catch((error) => {
  const status = error?.status ? ` (HTTP ${error.status})` : "";
  console.error(`videos.mjs failed${status}: ${error?.stack ?? error}`);
  process.exit(1);
});
