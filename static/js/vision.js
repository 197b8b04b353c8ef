// Camera and screen capture: downscaled JPEG frames handed to `onFrame(ArrayBuffer)`.
// Camera: 320x240 (centre crop to 4:3), quality 0.7, at `fps` (default 2).
// Screen: at most 1280 px wide, quality 0.7, at a low rate (default 0.5 fps), and only when
// the picture changed: a 32x18 grayscale thumbnail is compared with the one of the last frame
// sent (mean absolute difference over 0..255 above `threshold`).

function toJpeg(canvas, quality) {
  return new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', quality)).then((blob) =>
    blob ? blob.arrayBuffer() : null,
  );
}

class FrameTimer {
  constructor(fn) {
    this.fn = fn;
    this.timer = null;
    this.busy = false;
  }

  start(fps) {
    this.stop();
    const f = Math.max(0.05, Math.min(30, Number(fps) || 1));
    this.timer = setInterval(async () => {
      if (this.busy) return; // the previous frame is still encoding: skip this tick
      this.busy = true;
      try {
        await this.fn();
      } finally {
        this.busy = false;
      }
    }, 1000 / f);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }
}

/** What camera and screen capture share: a media stream shown in `video`, a frame timer. */
class StreamCapture {
  constructor({ video, onFrame, onEnded }) {
    this.video = video;
    this.onFrame = onFrame;
    this.onEnded = onEnded || (() => {});
    this.stream = null;
    this.timer = new FrameTimer(() => this.grab());
    this.frames = 0;
    this.enabled = () => true; // the page says whether frames are wanted right now
  }

  get active() {
    return this.stream !== null;
  }

  /** Show `stream` and grab from it at `fps`; the browser ending it (its own stop button,
   * the device unplugged) stops the capture too. */
  async attach(stream, fps) {
    this.stream = stream;
    this.stream.getVideoTracks()[0].addEventListener('ended', () => {
      this.stop();
      this.onEnded();
    });
    this.video.srcObject = this.stream;
    await this.video.play().catch(() => {});
    this.setFps(fps);
  }

  setFps(fps) {
    this.fps = fps;
    if (this.stream) this.timer.start(fps);
  }

  stop() {
    this.timer.stop();
    if (this.stream) this.stream.getTracks().forEach((tr) => tr.stop());
    this.stream = null;
    this.video.srcObject = null;
  }
}

export class CameraCapture extends StreamCapture {
  /**
   * @param {{video: HTMLVideoElement, onFrame: (buf: ArrayBuffer) => boolean|void,
   *          onEnded?: () => void}} o
   */
  constructor(o) {
    super(o);
    this.canvas = document.createElement('canvas');
    this.canvas.width = 320;
    this.canvas.height = 240;
    this.g = this.canvas.getContext('2d');
    this.fps = 2;
  }

  async start(fps = 2) {
    if (this.stream) return;
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 15 } },
      audio: false,
    });
    await this.attach(stream, fps);
  }

  async grab() {
    const v = this.video;
    if (!this.enabled() || v.readyState < 2 || !v.videoWidth) return;
    // Centre-crop the source to 4:3 so faces are not stretched.
    const sw = v.videoWidth;
    const sh = v.videoHeight;
    let cw = sw;
    let ch = Math.round((sw * 3) / 4);
    if (ch > sh) {
      ch = sh;
      cw = Math.round((sh * 4) / 3);
    }
    this.g.drawImage(v, (sw - cw) / 2, (sh - ch) / 2, cw, ch, 0, 0, 320, 240);
    const jpeg = await toJpeg(this.canvas, 0.7);
    if (jpeg && this.onFrame(jpeg) !== false) this.frames += 1;
  }
}

export class ScreenCapture extends StreamCapture {
  /**
   * @param {{video: HTMLVideoElement, onFrame: (buf: ArrayBuffer) => boolean|void,
   *          onEnded?: () => void, threshold?: number, maxWidth?: number}} o
   */
  constructor({ video, onFrame, onEnded, threshold = 3, maxWidth = 1280 }) {
    super({ video, onFrame, onEnded });
    this.threshold = threshold;
    this.maxWidth = maxWidth;
    this.thumb = document.createElement('canvas');
    this.thumb.width = 32;
    this.thumb.height = 18;
    this.tg = this.thumb.getContext('2d', { willReadFrequently: true });
    this.full = document.createElement('canvas');
    this.fg = this.full.getContext('2d');
    this.lastThumb = null;
    this.skipped = 0;
    this.lastDiff = null;
  }

  async start(fps = 0.5) {
    if (this.stream) return;
    const stream = await navigator.mediaDevices.getDisplayMedia({
      video: { frameRate: { ideal: 5, max: 10 } },
      audio: false,
    });
    this.lastThumb = null;
    await this.attach(stream, fps);
  }

  /** Grayscale 32x18 thumbnail of the current picture. */
  thumbnail() {
    this.tg.drawImage(this.video, 0, 0, 32, 18);
    const px = this.tg.getImageData(0, 0, 32, 18).data;
    const g = new Uint8Array(32 * 18);
    for (let i = 0, j = 0; j < g.length; i += 4, j += 1) {
      g[j] = (px[i] * 77 + px[i + 1] * 150 + px[i + 2] * 29) >> 8;
    }
    return g;
  }

  static meanAbsDiff(a, b) {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
    return s / a.length;
  }

  async grab() {
    const v = this.video;
    if (!this.enabled() || v.readyState < 2 || !v.videoWidth) return;
    const th = this.thumbnail();
    if (this.lastThumb) {
      this.lastDiff = ScreenCapture.meanAbsDiff(th, this.lastThumb);
      if (this.lastDiff < this.threshold) {
        this.skipped += 1;
        return;
      }
    }
    const scale = Math.min(1, this.maxWidth / v.videoWidth);
    const w = Math.max(1, Math.round(v.videoWidth * scale));
    const h = Math.max(1, Math.round(v.videoHeight * scale));
    if (this.full.width !== w || this.full.height !== h) {
      this.full.width = w;
      this.full.height = h;
    }
    this.fg.drawImage(v, 0, 0, w, h);
    const jpeg = await toJpeg(this.full, 0.7);
    if (jpeg && this.onFrame(jpeg) !== false) {
      this.frames += 1;
      this.lastThumb = th; // compare against what the server has actually seen
    }
  }

  stop() {
    super.stop();
    this.lastThumb = null;
  }
}
