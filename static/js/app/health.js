// The live module status in the header and the first-run setup card (../status.js).

import { $, state, api } from './context.js';
import { LiveStatus } from '../status.js';
import { connShown, showConnection } from './socket.js';

/** null until built (showConnection checks it). */
export let liveStatus = null;
liveStatus = new LiveStatus({
  api,
  pillEl: $('health'),
  setupEl: $('setup-card'),
  onChange: (ls) => {
    state.health = { online: ls.online, modules: ls.modules, details: ls.details, progress: ls.progress, needsSetup: ls.needsSetup, test: ls.lastTest };
    state.healthProblems = ls.problemDetails;
    if (ls.online === false && state.connection !== 'open') showConnection(connShown.kind);
    else if (ls.online && $('conn-dot').dataset.state === 'offline') showConnection(connShown.kind);
  },
});
