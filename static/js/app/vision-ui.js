// Camera and screen sharing controls (../vision.js captures and paces the frames).

import { $, state, settings, report } from './context.js';
import { t } from '../../i18n.js';
import { KIND } from '../ws-client.js';
import { CameraCapture, ScreenCapture } from '../vision.js';
import { ws } from './socket.js';
import { unsupported } from './session.js';

const wantVision = () => state.connected && state.sessionStatus === 'live';

/** A capture whose frames go to the server while the session is live. */
function capture(Capture, videoId, kind, media, counter) {
  const c = new Capture({
    video: $(videoId),
    onFrame: (jpeg) => {
      if (!wantVision() || unsupported[media]) return false;
      const ok = ws.sendBinary(kind, jpeg);
      if (ok) state.sent[counter] += 1;
      return ok;
    },
    onEnded: () => syncVisionUi(),
  });
  c.enabled = wantVision;
  return c;
}

export const camera = capture(CameraCapture, 'camera-video', KIND.CAMERA, 'camera', 'cameraFrames');
export const screenCap = capture(ScreenCapture, 'screen-video', KIND.SCREEN, 'screen', 'screenFrames');

/** Start a capture at the settings' rate; a denied device is reported, not thrown. */
async function startCapture(capture, fpsKey, fallbackFps, errKey, code) {
  try {
    await capture.start(Number(settings.get(fpsKey)) || fallbackFps);
  } catch (err) {
    report('client', () => t(errKey, { message: err && err.message ? err.message : String(err) }), { code });
  }
  syncVisionUi();
}

export const startCamera = () => startCapture(camera, 'cameraFps', 2, 'err.camera.denied', 'camera_failed');
export const startScreen = () => startCapture(screenCap, 'screenFps', 0.5, 'err.screen.denied', 'screen_failed');

export function stopCamera() {
  camera.stop();
  syncVisionUi();
}

export function stopScreen() {
  screenCap.stop();
  syncVisionUi();
}

export function syncVisionUi() {
  state.camera.active = camera.active;
  state.screen.active = screenCap.active;
  $('btn-camera').setAttribute('aria-pressed', String(camera.active));
  $('btn-screen').setAttribute('aria-pressed', String(screenCap.active));
  $('camera-video').hidden = !camera.active;
  $('screen-video').hidden = !screenCap.active;
  $('previews').hidden = !camera.active && !screenCap.active;
}

setInterval(() => {
  state.sent.screenSkipped = screenCap.skipped;
  state.screen.lastDiff = screenCap.lastDiff;
  const stats = $('screen-stats');
  stats.hidden = !screenCap.active;
  if (screenCap.active) stats.textContent = t('screen.sent', { n: state.sent.screenFrames });
}, 1000);

/** The camera and screen buttons. */
export function wireVision() {
  $('btn-camera').addEventListener('click', () => (camera.active ? stopCamera() : startCamera()));
  $('btn-screen').addEventListener('click', () => (screenCap.active ? stopScreen() : startScreen()));
}
