// The microphone at the call rate: the AudioContext's samples (44.1 or 48 kHz) averaged down to 8 or 16 kHz
// (a box filter over each output sample's span: enough against aliasing for speech), as signed 16-bit PCM,
// posted in frames of 20 ms, as mod_audio_stream sends a call's audio.
"use strict";

class CallCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const rate = options.processorOptions.rate;
    this.step = sampleRate / rate; // input samples per output sample (sampleRate: the context's)
    this.frame = new Int16Array(rate / 50);
    this.filled = 0;
    this.sum = 0;
    this.count = 0;
    this.phase = 0;
  }

  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    for (let i = 0; i < input.length; i++) {
      this.sum += input[i];
      this.count += 1;
      this.phase += 1;
      if (this.phase < this.step) continue;
      this.phase -= this.step;
      const value = Math.max(-1, Math.min(1, this.sum / this.count));
      this.sum = 0;
      this.count = 0;
      this.frame[this.filled++] = value < 0 ? value * 0x8000 : value * 0x7fff;
      if (this.filled === this.frame.length) {
        const out = this.frame.slice(0);
        this.port.postMessage(out.buffer, [out.buffer]);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("call-capture", CallCapture);
