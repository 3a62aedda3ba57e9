// A test call from the console: the page is a mod_audio_stream client. "Call" asks the console for a stream
// URL (a fresh call uuid and its short-lived token), sends the metadata, then the microphone's audio through
// the AudioWorklet (call-worklet.js) as 20 ms frames of 16-bit PCM at the call rate; it plays the secretary's
// `streamAudio` chunks in order, stops them on `stopAudio` (a barge-in), and writes down each
// `voiceai.transcript` turn and `voiceai.action` (a transfer that was not placed: nothing is dialled).
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const root = document.querySelector("[data-test-call]");
  const callButton = root && root.querySelector("button.call");
  if (!callButton) return;
  const hangupButton = root.querySelector("button.hangup");
  const rateSelect = root.querySelector("#sample_rate");
  const status = root.querySelector(".call-status");
  const transcript = root.querySelector(".transcript");
  const actions = root.querySelector(".call-actions");
  const record = root.querySelector(".record");
  let ws = null, context = null, microphone = null, playhead = 0, playing = [], claimed = false, heard = 0;

  const say = (text) => { status.textContent = text; };

  function line(list, who, text) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    item.append(name, " ", text);
    list.append(item);
  }

  function play(data) {
    const bytes = atob(data.audioData);
    const samples = bytes.length >> 1;
    if (!samples) return;
    const buffer = context.createBuffer(1, samples, data.sampleRate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < samples; i++) {
      const value = bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8);
      channel[i] = (value >= 0x8000 ? value - 0x10000 : value) / 0x8000;
    }
    const source = context.createBufferSource();
    source.buffer = buffer;
    source.connect(context.destination);
    const at = Math.max(context.currentTime + 0.05, playhead);
    source.start(at);
    playhead = at + buffer.duration;
    heard += buffer.duration;
    root.dataset.heardMs = String(Math.round(heard * 1000)); // how much of the secretary's voice came
    playing.push(source);
    source.onended = () => { playing = playing.filter((s) => s !== source); };
  }

  function stopPlaying() {
    for (const source of playing) source.stop();
    playing = [];
    playhead = 0;
  }

  function action(message) {
    const where = message.destination ? ` to ${message.destination}` : "";
    const text = message.action === "transfer"
      ? `Transfer${where}: not placed, this is a test call.`
      : `${message.action}${where}: the call would end here.`;
    line(actions, "Action", text);
  }

  function received(event) {
    let message;
    try { message = JSON.parse(event.data); } catch (_) { return; }
    if (message.type === "streamAudio" && message.data) play(message.data);
    else if (message.type === "stopAudio") stopPlaying();
    else if (message.type === "voiceai.claimed") { claimed = true; say("Connected: speak now."); }
    else if (message.type === "voiceai.action") action(message);
    else if (message.type === "voiceai.transcript") {
      if (message.caller) line(transcript, "You", message.caller);
      if (message.secretary) line(transcript, "Secretary", message.secretary);
    }
  }

  function ended(reason) {
    say(`Call ended${reason ? ` (${reason})` : ""}.`);
    if (microphone) for (const track of microphone.getTracks()) track.stop();
    if (context) context.close();
    ws = context = microphone = null;
    callButton.disabled = false;
    hangupButton.disabled = true;
  }

  async function call() {
    callButton.disabled = true;
    claimed = false;
    heard = 0;
    record.hidden = true;
    transcript.replaceChildren();
    actions.replaceChildren();
    say("Connecting…");
    const form = new FormData();
    form.append("csrf", root.dataset.csrf);
    form.append("sample_rate", rateSelect.value);
    let minted;
    try {
      const response = await fetch(root.dataset.mint, { method: "POST", body: form, credentials: "same-origin" });
      minted = await response.json();
      if (!response.ok) throw new Error(minted.error || `HTTP ${response.status}`);
      context = new AudioContext();
      await context.audioWorklet.addModule(root.dataset.worklet);
      microphone = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true },
      });
    } catch (error) {
      ended(error.message || String(error));
      return;
    }
    const capture = new AudioWorkletNode(context, "call-capture", { processorOptions: { rate: minted.sample_rate } });
    capture.connect(context.destination); // silent: it writes no output, but is pulled
    record.querySelector("a").href = minted.record;
    ws = new WebSocket(minted.url);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => {
      ws.send(JSON.stringify({ sample_rate: minted.sample_rate, caller_id_name: "Console test call" }));
      capture.port.onmessage = (e) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(e.data); };
      context.createMediaStreamSource(microphone).connect(capture);
      hangupButton.disabled = false;
      say("Ringing…");
    };
    ws.onmessage = received;
    ws.onclose = (e) => { record.hidden = !claimed; ended(e.reason); };
  }

  callButton.addEventListener("click", call);
  hangupButton.addEventListener("click", () => { if (ws) ws.close(1000, "hung up"); });
});
