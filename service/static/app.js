// Emoface demo page: record (encoded to 16-bit WAV here), or upload, then POST to /speech-to-face
// with Accept: application/json (with the chosen photo, when "on my photo" is ticked); a photo, from
// a file or a webcam snapshot, edited by /edit; or go live: the microphone's 16-bit PCM over a WebSocket to
// /ws/speech-to-face, with a face and bars that follow the voice about once a second.
"use strict";
const EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"];
const $ = (id) => document.getElementById(id);

function headers(extra = {}) {
  const key = $("api-key").value.trim();
  return key ? { ...extra, "X-API-Key": key } : extra;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function problemText(response) {
  // the problem's detail says what was wrong; its title only when there is no detail
  try { const p = await response.json(); return p.detail || p.title; } catch { return `HTTP ${response.status}`; }
}

function showResult(r, caption) {
  $("result").hidden = false;
  $("emotion").textContent = r.emotion;
  $("confidence").textContent = `(${(100 * r.confidence).toFixed(1)}%)`;
  $("face").src = "data:image/png;base64," + r.image_png_base64;
  $("caption").textContent = caption;
  const bars = $("bars");
  bars.replaceChildren();
  for (const e of EMOTIONS) {
    const p = r.probabilities[e];
    const name = document.createElement("span"); name.textContent = e;
    const track = document.createElement("div");
    const bar = document.createElement("div");
    bar.className = "bar" + (e === r.emotion ? " top" : "");
    bar.style.width = `${Math.max(1, 100 * p)}%`;
    bar.dataset.emotion = e;
    track.appendChild(bar);
    const pct = document.createElement("span"); pct.textContent = `${(100 * p).toFixed(1)}%`;
    bars.append(name, track, pct);
  }
}

async function analyse(blob, filename) {
  setStatus("Listening…");
  const form = new FormData();
  form.append("file", blob, filename);
  const onPhoto = $("use-photo").checked && photo;
  if (onPhoto) form.append("photo", photo.blob, photo.name);
  const response = await fetch("/speech-to-face?size=192", {
    method: "POST", body: form, headers: headers({ Accept: "application/json" }),
  });
  if (!response.ok) {
    $("result").hidden = true;  // the previous face and bars are not this file's
    setStatus(await problemText(response), true);
    return;
  }
  const r = await response.json();
  const who = onPhoto ? `your photo, edited to ${r.emotion}` : r.face === "voice" ? "the face of this voice" : `seed ${r.seed}`;
  showResult(r, `${who} · ${r.duration_s.toFixed(2)} s at ${r.sample_rate} Hz`);
  setStatus("Done.");
}

// --- recording: capture PCM with an AudioContext and write a mono 16-bit WAV ---
let recorder = null;
function encodeWav(chunks, sampleRate) {
  const length = chunks.reduce((n, c) => n + c.length, 0);
  const buffer = new ArrayBuffer(44 + 2 * length);
  const view = new DataView(buffer);
  const text = (offset, s) => [...s].forEach((ch, i) => view.setUint8(offset + i, ch.charCodeAt(0)));
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * length, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, sampleRate, true); view.setUint32(28, 2 * sampleRate, true);
  view.setUint16(32, 2, true); view.setUint16(34, 16, true);
  text(36, "data"); view.setUint32(40, 2 * length, true);
  let offset = 44;
  for (const chunk of chunks) for (const x of chunk) {
    view.setInt16(offset, Math.max(-1, Math.min(1, x)) * 0x7fff, true); offset += 2;
  }
  return new Blob([buffer], { type: "audio/wav" });
}

async function toggleRecording() {
  const button = $("record");
  if (recorder) {
    const { ctx, stream, node, chunks } = recorder;
    recorder = null;
    node.disconnect(); stream.getTracks().forEach((t) => t.stop());
    await ctx.close();
    button.textContent = "Record"; button.classList.remove("recording");
    await analyse(encodeWav(chunks, ctx.sampleRate), "recording.wav");
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const ctx = new AudioContext();
    const source = ctx.createMediaStreamSource(stream);
    const node = ctx.createScriptProcessor(4096, 1, 1);
    const chunks = [];
    node.onaudioprocess = (e) => chunks.push(new Float32Array(e.inputBuffer.getChannelData(0)));
    source.connect(node); node.connect(ctx.destination);
    recorder = { ctx, stream, node, chunks };
    button.textContent = "Stop"; button.classList.add("recording");
    setStatus("Recording… press Stop when done.");
  } catch (err) {
    setStatus(`Microphone unavailable: ${err.message}`, true);
  }
}

// --- live: the microphone's samples as 16-bit PCM messages on a WebSocket ---
let live = null;
function toPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = Math.max(-1, Math.min(1, samples[i])) * 0x7fff;
  return out.buffer;
}

function stopLive(message, isError = false) {
  if (!live) return;
  const { ctx, stream, node, ws } = live;
  live = null;
  node.disconnect(); stream.getTracks().forEach((t) => t.stop()); ctx.close();
  if (ws.readyState <= WebSocket.OPEN) ws.close(1000, "stopped");
  $("live").textContent = "Live"; $("live").classList.remove("recording");
  if (message) setStatus(message, isError);
}

async function toggleLive() {
  if (live) { stopLive("Live stopped."); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    let ctx;
    try { ctx = new AudioContext({ sampleRate: 16000 }); } catch { ctx = new AudioContext(); }
    // no seed: the person drawn is the speaker's own face, from their voice
    const params = new URLSearchParams({ rate: String(ctx.sampleRate) });
    // a browser cannot set headers on a WebSocket: the key travels as a subprotocol token, never in the URL
    const key = $("api-key").value.trim();
    const b64url = (text) => btoa(String.fromCharCode(...new TextEncoder().encode(text)))
      .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const protocols = key ? ["emoface", `emoface-key.${b64url(key)}`] : ["emoface"];
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/speech-to-face?${params}`, protocols);
    const source = ctx.createMediaStreamSource(stream);
    const node = ctx.createScriptProcessor(4096, 1, 1);
    node.onaudioprocess = (e) => { if (ws.readyState === WebSocket.OPEN) ws.send(toPcm16(e.inputBuffer.getChannelData(0))); };
    let faces = 0;
    ws.onmessage = (event) => {
      const r = JSON.parse(event.data);
      if (r.type !== "face") { setStatus(`Live: ${faces} faces · silence at ${r.t.toFixed(0)} s`); return; }
      faces += 1;
      showResult(r, `${r.face === "voice" ? "your voice's face" : `seed ${r.seed}`} · live, ${r.t.toFixed(0)} s`);
      setStatus(`Live: ${faces} faces · ${r.t.toFixed(0)} s`);
    };
    ws.onclose = (event) => { if (live && live.ws === ws) stopLive(`Live stream closed (${event.code}): ${event.reason}`, event.code !== 1000); };
    source.connect(node); node.connect(ctx.destination);
    live = { ctx, stream, node, ws };
    $("live").textContent = "Stop live"; $("live").classList.add("recording");
    setStatus("Live: speak… (the face drawn is your voice's)");
  } catch (err) {
    setStatus(`Microphone unavailable: ${err.message}`, true);
  }
}

// --- your photo: a file or a webcam snapshot, edited by /edit or used by /speech-to-face ---
let photo = null;  // { blob, name }
function setPhoto(blob, name) {
  photo = { blob, name };
  $("photo-before").src = URL.createObjectURL(blob);
  $("photo-after").removeAttribute("src");
  $("photo-result").hidden = true;
  $("edit").disabled = false;
  $("use-photo").disabled = false;
  $("use-photo").checked = true;
  $("photo-status").textContent = `Photo: ${name}. Edit it, or record speech above to edit it to the emotion heard.`;
  $("photo-status").classList.remove("error");
}

async function editPhoto() {
  if (!photo) return;
  const emotion = $("edit-emotion").value;
  const form = new FormData();
  form.append("photo", photo.blob, photo.name);
  $("photo-status").textContent = "Editing…";
  const response = await fetch(`/edit?emotion=${encodeURIComponent(emotion)}`, { method: "POST", body: form, headers: headers() });
  if (!response.ok) {
    $("photo-result").hidden = true;  // a previous edit is not this photo's
    $("photo-status").textContent = await problemText(response);
    $("photo-status").classList.add("error");
    return;
  }
  $("photo-after").src = URL.createObjectURL(await response.blob());
  $("photo-caption").textContent = `edited to ${response.headers.get("X-Emotion")}`;
  $("photo-result").hidden = false;
  $("photo-status").textContent = "Done.";
  $("photo-status").classList.remove("error");
}

let camera = null;
async function toggleWebcam() {
  if (camera) { camera.getTracks().forEach((t) => t.stop()); camera = null; $("camera").hidden = true; $("snap").hidden = true; $("webcam").textContent = "Webcam"; return; }
  try {
    camera = await navigator.mediaDevices.getUserMedia({ video: true });
    $("camera").srcObject = camera;
    $("camera").hidden = false; $("snap").hidden = false; $("webcam").textContent = "Close webcam";
  } catch (err) {
    $("photo-status").textContent = `Webcam unavailable: ${err.message}`;
    $("photo-status").classList.add("error");
  }
}

function snapshot() {
  const video = $("camera");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => { if (blob) setPhoto(blob, "webcam.png"); }, "image/png");
  toggleWebcam();
}

async function generate(event) {
  event.preventDefault();
  const params = new URLSearchParams({
    emotion: $("gen-emotion").value, seed: $("gen-seed").value, count: $("gen-count").value, size: "128",
  });
  const response = await fetch(`/generate?${params}`, { headers: headers() });
  if (!response.ok) { alert(await problemText(response)); return; }
  const img = $("gen-image");
  img.src = URL.createObjectURL(await response.blob());
  img.hidden = false;
}

for (const e of EMOTIONS) $("gen-emotion").add(new Option(e, e, e === "happy", e === "happy"));
for (const e of EMOTIONS) $("edit-emotion").add(new Option(e, e, e === "happy", e === "happy"));
$("photo-file").addEventListener("change", (e) => { const f = e.target.files[0]; if (f) setPhoto(f, f.name); });
$("edit").addEventListener("click", editPhoto);
$("webcam").addEventListener("click", toggleWebcam);
$("snap").addEventListener("click", snapshot);
$("record").addEventListener("click", toggleRecording);
$("live").addEventListener("click", toggleLive);
$("upload").addEventListener("change", (e) => { const f = e.target.files[0]; if (f) analyse(f, f.name); });
$("gen-form").addEventListener("submit", generate);
