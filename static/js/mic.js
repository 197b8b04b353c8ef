// Microphone capture: getUserMedia -> AudioWorklet (resample to 16 kHz, PCM16, 20 ms frames).
// Frames go to `onFrame(ArrayBuffer)`; the level (0..1) to `onLevel(rms, peak)`.
// Mute disables the track, so the worklet keeps producing frames of silence: the server's
// VAD still sees the end of a turn.

export class MicCapture {
  constructor({ onFrame, onLevel, onEnded }) {
    this.onFrame = onFrame;
    this.onLevel = onLevel || (() => {});
    this.onEnded = onEnded || (() => {});
    this.stream = null;
    this.ctx = null;
    this.node = null;
    this.muted = false;
    this.frames = 0;
  }

  get active() {
    return this.stream !== null;
  }

  get contextRate() {
    return this.ctx ? this.ctx.sampleRate : null;
  }

  /**
   * @param {{echoCancellation: boolean, noiseSuppression: boolean, autoGainControl: boolean}} flags
   */
  async start(flags) {
    if (this.stream) return;
    const constraints = {
      audio: {
        echoCancellation: !!flags.echoCancellation,
        noiseSuppression: !!flags.noiseSuppression,
        autoGainControl: !!flags.autoGainControl,
        channelCount: 1,
      },
      video: false,
    };
    const stream = await navigator.mediaDevices.getUserMedia(constraints);
    let ctx;
    try {
      ctx = new AudioContext({ latencyHint: 'interactive' });
      await ctx.audioWorklet.addModule(new URL('../audio-worklet.js', import.meta.url));
      const src = ctx.createMediaStreamSource(stream);
      const node = new AudioWorkletNode(ctx, 'pcm16-resampler', {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        channelCount: 1,
        channelCountMode: 'explicit',
        channelInterpretation: 'speakers',
        processorOptions: { targetRate: 16000, frameSamples: 320 },
      });
      node.port.onmessage = (e) => {
        const m = e.data;
        if (m && m.type === 'frame') {
          this.frames += 1;
          this.onLevel(this.muted ? 0 : m.rms, this.muted ? 0 : m.peak);
          this.onFrame(m.pcm);
        }
      };
      // The worklet writes nothing to its output; a silent gain keeps it pulled by the graph.
      const sink = ctx.createGain();
      sink.gain.value = 0;
      src.connect(node);
      node.connect(sink);
      sink.connect(ctx.destination);
      if (ctx.state !== 'running') await ctx.resume().catch(() => {});
      this.node = node;
      this.src = src;
    } catch (err) {
      stream.getTracks().forEach((tr) => tr.stop());
      if (ctx) ctx.close().catch(() => {});
      throw err;
    }
    this.ctx = ctx;
    this.stream = stream;
    this.track = stream.getAudioTracks()[0];
    this.track.enabled = !this.muted;
    this.track.addEventListener('ended', () => {
      this.stop();
      this.onEnded();
    });
  }

  /** Settings the browser actually applied (useful to check the raw-mic flags). */
  appliedSettings() {
    if (!this.track || !this.track.getSettings) return null;
    const s = this.track.getSettings();
    return {
      echoCancellation: s.echoCancellation,
      noiseSuppression: s.noiseSuppression,
      autoGainControl: s.autoGainControl,
      sampleRate: s.sampleRate,
      channelCount: s.channelCount,
      deviceId: s.deviceId,
    };
  }

  setMuted(muted) {
    this.muted = !!muted;
    if (this.track) this.track.enabled = !this.muted;
  }

  stop() {
    if (this.node) {
      this.node.port.onmessage = null;
      try {
        this.src.disconnect();
        this.node.disconnect();
      } catch {
        /* already disconnected */
      }
    }
    if (this.stream) this.stream.getTracks().forEach((tr) => tr.stop());
    if (this.ctx) this.ctx.close().catch(() => {});
    this.stream = null;
    this.track = null;
    this.ctx = null;
    this.node = null;
    this.src = null;
    this.onLevel(0, 0);
  }
}
