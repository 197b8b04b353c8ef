// Mic capture worklet: resample the context rate (44.1/48 kHz/...) to 16 kHz by ratio with
// linear interpolation, carrying the fractional phase and the last sample across blocks so
// block edges add no clicks or drift; convert to PCM16 and post 20 ms frames (320 samples).
//
// Messages to the main thread: {type: 'frame', pcm: ArrayBuffer (640 bytes, int16 LE),
// rms, peak}. Messages from the main thread: {type: 'reset'}.

class Pcm16Resampler extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.outRate = opts.targetRate || 16000;
    this.frameSamples = opts.frameSamples || 320;
    // `sampleRate` is the AudioWorkletGlobalScope's context rate.
    this.step = sampleRate / this.outRate; // input samples per output sample
    this.reset();
    this.port.onmessage = (e) => {
      if (e.data && e.data.type === 'reset') this.reset();
    };
  }

  reset() {
    // Position of the next output sample, in input samples relative to the current block's
    // first sample. The previous block's last sample sits at index -1 (this.prev).
    this.pos = 0;
    this.prev = 0;
    this.frame = new Int16Array(this.frameSamples);
    this.fill = 0;
    this.sumSq = 0;
    this.peak = 0;
  }

  push(v) {
    // v is a float sample in [-1, 1]; clamp and convert to int16.
    if (v > 1) v = 1;
    else if (v < -1) v = -1;
    const s = v < 0 ? Math.round(v * 0x8000) : Math.round(v * 0x7fff);
    this.frame[this.fill++] = s;
    this.sumSq += v * v;
    const a = v < 0 ? -v : v;
    if (a > this.peak) this.peak = a;
    if (this.fill === this.frameSamples) {
      const buf = this.frame.buffer;
      this.port.postMessage(
        {
          type: 'frame',
          pcm: buf,
          rms: Math.sqrt(this.sumSq / this.frameSamples),
          peak: this.peak,
        },
        [buf],
      );
      this.frame = new Int16Array(this.frameSamples);
      this.fill = 0;
      this.sumSq = 0;
      this.peak = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || !input[0]) return true;
    const x = input[0]; // mono: the mic track is captured with channelCount 1
    const n = x.length;
    if (n === 0) return true;
    let pos = this.pos;
    const step = this.step;
    // Interpolate between sample i and i+1 while both are known (i may be -1: the carried one).
    while (pos < n - 1) {
      const i = Math.floor(pos);
      const frac = pos - i;
      const a = i < 0 ? this.prev : x[i];
      const b = x[i + 1];
      this.push(a + (b - a) * frac);
      pos += step;
    }
    this.pos = pos - n; // >= -1 because pos >= n - 1 here
    this.prev = x[n - 1];
    return true;
  }
}

registerProcessor('pcm16-resampler', Pcm16Resampler);
