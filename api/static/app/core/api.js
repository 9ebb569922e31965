// The API, as the app calls it: same origin, the borrower's token, JSON. A refusal becomes an ApiError carrying the
// API's stable code (shown to the borrower in plain words, the code kept for support); no answer at all (offline,
// the server away) is the code "offline".

const TOKEN = "loanledger.app.session";

export class ApiError extends Error {
  constructor(status, code, message, headers = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

export function session() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(TOKEN) || "null");
    return saved && saved.expires_at > Date.now() / 1000 + 30 ? saved : null;
  } catch {
    return null;
  }
}

export function keepSession(answer) {
  sessionStorage.setItem(TOKEN, JSON.stringify(answer));
}

export function endSession() {
  sessionStorage.removeItem(TOKEN);
}

// call("POST", "/v1/loans", { body, headers: { "Idempotency-Key": key, "X-Step-Up-Code": code } })
export async function call(method, path, { body = undefined, headers = {}, auth = true } = {}) {
  const sent = { "Accept": "application/json", ...headers };
  if (body !== undefined) sent["Content-Type"] = "application/json";
  const token = auth ? session()?.token : null;
  if (token) sent["Authorization"] = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, "offline", String(error));
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = data?.error || {};
    if (response.status === 401 && auth) endSession();
    throw new ApiError(response.status, error.code || `http_${response.status}`, error.message || text,
                       response.headers);
  }
  return data;
}

export const get = (path, options) => call("GET", path, options);
export const post = (path, body, options = {}) => call("POST", path, { ...options, body });

// One key per intent, made before the first try and reused on every retry of it (the API replays the first answer).
export function idempotencyKey() {
  return `app-${crypto.randomUUID()}`;
}
