// Views: #dashboard shows the usage dashboard (../dashboard.js) instead of the studio.

import { $, state, api, restError, personaName } from './context.js';
import { Dashboard } from '../dashboard.js';

export const dashboard = new Dashboard({
  root: $('dashboard'),
  api,
  state: state.dashboard,
  personaName,
  onError: (what, err) => restError(what, err),
});

export function route() {
  const dash = location.hash === '#dashboard';
  state.view = dash ? 'dashboard' : 'studio';
  $('dashboard').hidden = !dash;
  $('studio-view').hidden = dash;
  $('tab-dashboard').toggleAttribute('aria-current', dash);
  $('tab-studio').toggleAttribute('aria-current', !dash);
  if (dash) {
    $('tab-dashboard').setAttribute('aria-current', 'page');
    dashboard.load();
  } else $('tab-studio').setAttribute('aria-current', 'page');
}
window.addEventListener('hashchange', route);

/** The Studio tab goes back from the dashboard without reloading. */
export function wireRouter() {
  $('tab-studio').addEventListener('click', (e) => {
    e.preventDefault();
    history.pushState(null, '', location.pathname + location.search);
    route();
  });
}
