// REST calls with the bearer token. Errors carry the HTTP status and the server's detail.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function makeApi(getToken) {
  async function request(path, { method = 'GET', body } = {}) {
    const headers = { Accept: 'application/json' };
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let r;
    try {
      r = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      throw new ApiError(0, String(err && err.message ? err.message : err));
    }
    let data = null;
    try {
      data = await r.json();
    } catch {
      data = null;
    }
    if (!r.ok) {
      const detail =
        data && (typeof data.detail === 'string' ? data.detail : data.message || data.error);
      throw Object.assign(new ApiError(r.status, detail || `HTTP ${r.status}`), { data });
    }
    return data;
  }

  const qs = (o) =>
    Object.entries(o)
      .filter(([, v]) => v !== undefined && v !== null && v !== '')
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('&');

  return {
    request,
    personas: () => request('/v1/personas').then((d) => (d && d.personas) || []),
    /** {personas, default}: `default` is the server's DEFAULT_PERSONA. */
    personaList: () => request('/v1/personas').then((d) => ({ personas: (d && d.personas) || [], default: (d && d.default) || null })),
    userSettings: () => request('/v1/settings').then((d) => (d && d.settings) || {}),
    saveUserSettings: (body) => request('/v1/settings', { method: 'PUT', body }).then((d) => (d && d.settings) || {}),
    setupTest: (targets = ['llm']) => request('/v1/setup/test', { method: 'POST', body: { targets } }),
    usage: (from, to) => request(`/v1/usage?${qs({ from, to })}`),
    deleteSession: (id) => request(`/v1/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' }),
    voices: () => request('/v1/tts/voices').then((d) => (d && d.voices) || []),
    sessions: (limit = 20, offset = 0, q = '') =>
      request(`/v1/sessions?${qs({ limit, offset, q })}`).then((d) => (d && d.sessions) || []),
    messages: (id, limit = 200, offset = 0) =>
      request(`/v1/sessions/${encodeURIComponent(id)}/messages?${qs({ limit, offset })}`).then(
        (d) => (d && d.messages) || [],
      ),
    /** /health answers 503 with a body when a module is not ready: return the body anyway. */
    health: () =>
      request('/health').catch((err) => {
        if (err.data && err.data.modules) return err.data;
        throw err;
      }),
    /** Modules with the reason for each one not ready, and model downloads in flight. */
    healthDetails: () => request('/health/details'),
  };
}
