// Settings remembered in localStorage ('dmp.settings'), with URL overrides that are applied
// for this page load only (not written back):
//   ?rawmic=1            echoCancellation, noiseSuppression, autoGainControl all off
//                        (localStorage 'dmp.rawmic' = '1' does the same)
//   ?token= ?persona= ?lang=en|ko ?audio=mp3|pcm16|none ?ptt=1 ?camfps= ?screenfps=

const KEY = 'dmp.settings';

export const DEFAULTS = Object.freeze({
  token: 'local',
  lang: '',
  persona: '',
  temperature: '', // '' = persona default (not sent)
  maxTokens: '',
  instructions: '',
  instructionsMode: 'append', // 'append' adds to the persona's prompt, 'replace' stands in for it
  voice: '',
  silenceMs: '',
  turnType: 'semantic', // 'semantic' | 'server_vad' (push to talk is `ptt`)
  eagerness: 'auto', // semantic turns: 'low' | 'medium' | 'high' | 'auto'
  gaze: true, // semantic turns: the camera's gaze joins in
  bargeIn: true, // speech over a reply stops it (turn_detection.barge_in; not with push to talk)
  audioOut: true,
  audioFormat: 'mp3',
  cameraFps: 2,
  screenFps: 0.5,
  echoCancellation: true,
  noiseSuppression: true,
  autoGainControl: true,
  ptt: false,
  micOn: true,
});

function readStored() {
  try {
    const raw = localStorage.getItem(KEY);
    const obj = raw ? JSON.parse(raw) : {};
    return obj && typeof obj === 'object' ? obj : {};
  } catch {
    return {};
  }
}

function readOverrides() {
  const o = {};
  const q = new URLSearchParams(location.search);
  let raw = false;
  try {
    raw = localStorage.getItem('dmp.rawmic') === '1';
  } catch {
    /* storage unavailable */
  }
  if (q.get('rawmic') === '1' || q.get('rawmic') === 'true') raw = true;
  if (q.get('rawmic') === '0') raw = false;
  if (raw) {
    o.echoCancellation = false;
    o.noiseSuppression = false;
    o.autoGainControl = false;
  }
  if (q.has('token')) o.token = q.get('token');
  if (q.has('persona')) o.persona = q.get('persona');
  if (q.has('lang')) o.lang = q.get('lang');
  const audio = q.get('audio');
  if (audio === 'none') o.audioOut = false;
  else if (audio === 'mp3' || audio === 'pcm16') {
    o.audioOut = true;
    o.audioFormat = audio;
  }
  if (q.has('ptt')) o.ptt = q.get('ptt') === '1';
  if (q.has('camfps')) o.cameraFps = Number(q.get('camfps'));
  if (q.has('screenfps')) o.screenFps = Number(q.get('screenfps'));
  return o;
}

const EAGERNESS = ['low', 'medium', 'high', 'auto'];

/** session.update's turn_detection from the settings: push to talk, server VAD (with the
 * silence that ends a turn) or semantic (with eagerness and gaze; silence_ms is not used).
 * barge_in is sent only when off (the server's default is on). */
function turnDetection(v) {
  if (v.ptt) return { type: 'none' };
  const noBargeIn = v.bargeIn === false ? { barge_in: false } : {};
  if (v.turnType === 'server_vad') {
    const td = { type: 'server_vad' };
    const sm = parseInt(v.silenceMs, 10);
    if (v.silenceMs !== '' && Number.isFinite(sm)) td.silence_ms = sm;
    return { ...td, ...noBargeIn };
  }
  const eagerness = EAGERNESS.includes(v.eagerness) ? v.eagerness : 'auto';
  return { type: 'semantic', eagerness, gaze: v.gaze !== false, ...noBargeIn };
}

export class Settings {
  constructor() {
    this.stored = { ...DEFAULTS, ...readStored() };
    this.overrides = readOverrides();
    this.listeners = new Set();
  }

  get values() {
    return { ...this.stored, ...this.overrides };
  }

  get(key) {
    return key in this.overrides ? this.overrides[key] : this.stored[key];
  }

  /** A change made by the user: stored, and it ends any URL override of the same key. */
  set(key, value) {
    const old = this.get(key);
    this.stored[key] = value;
    delete this.overrides[key];
    try {
      localStorage.setItem(KEY, JSON.stringify(this.stored));
    } catch {
      /* storage full or disabled: keep the value for this page */
    }
    if (old !== value) for (const fn of this.listeners) fn(key, value, old);
  }

  onChange(fn) {
    this.listeners.add(fn);
  }

  micFlags() {
    return {
      echoCancellation: !!this.get('echoCancellation'),
      noiseSuppression: !!this.get('noiseSuppression'),
      autoGainControl: !!this.get('autoGainControl'),
    };
  }

  /** The `session` object of a session.update carrying every setting the server knows. */
  sessionPayload() {
    const v = this.values;
    const s = {};
    const temp = parseFloat(v.temperature);
    if (v.temperature !== '' && Number.isFinite(temp)) s.temperature = temp;
    const mt = parseInt(v.maxTokens, 10);
    if (v.maxTokens !== '' && Number.isFinite(mt)) s.max_tokens = mt;
    if (v.instructions && v.instructions.trim()) s.instructions = v.instructions.trim();
    s.instructions_mode = v.instructionsMode === 'replace' ? 'replace' : 'append';
    if (v.voice) s.voice = v.voice;
    s.output_audio = v.audioOut ? v.audioFormat || 'mp3' : 'none';
    s.visemes = true; // the avatar's mouth follows the server's viseme timeline
    s.turn_detection = turnDetection(v);
    return s;
  }

  /** The part of the session.update payload that a changed setting affects. */
  sessionPatch(key) {
    const full = this.sessionPayload();
    const map = {
      temperature: ['temperature'],
      maxTokens: ['max_tokens'],
      instructions: ['instructions', 'instructions_mode'],
      instructionsMode: ['instructions', 'instructions_mode'],
      voice: ['voice'],
      audioOut: ['output_audio'],
      audioFormat: ['output_audio'],
      ptt: ['turn_detection'],
      silenceMs: ['turn_detection'],
      turnType: ['turn_detection'],
      eagerness: ['turn_detection'],
      gaze: ['turn_detection'],
      bargeIn: ['turn_detection'],
    };
    const fields = map[key];
    if (!fields) return null;
    const patch = {};
    for (const f of fields) {
      if (f in full) patch[f] = full[f];
      // Cleared instructions are sent as '' (no extra instructions). A cleared voice,
      // temperature or token limit is not sent: the persona default applies from the next
      // session on.
      else if (f === 'instructions') patch[f] = '';
    }
    if (Object.keys(patch).length === 0) return null;
    return patch;
  }
}
