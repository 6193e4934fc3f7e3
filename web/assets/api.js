// The eCabinet REST API (`/api/...`, described at /api/openapi.json) as seen
// from the browser: JSON requests with a Bearer token, uploads with
// progress, downloads as blobs. No user interface here.
//
// Every failure is an `ApiError` with a stable `code`: the server's own
// (`{code, message}` bodies), or one made from the HTTP status when the
// body has none (`unauthorized`, `forbidden`, `not_found`, `too_large`,
// `rate_limited`, `internal`), or `network` when the server was not reached.

/** A failed API call. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code);
    this.status = status;
    this.code = code;
  }
}

/** The code for an HTTP status when the body does not carry one. */
function codeOfStatus(status) {
  if (status === 400 || status === 422) return 'bad_request';
  if (status === 401) return 'unauthorized';
  if (status === 403) return 'forbidden';
  if (status === 404) return 'not_found';
  if (status === 409) return 'conflict';
  if (status === 413) return 'too_large';
  if (status === 415) return 'unsupported_media_type';
  if (status === 429) return 'rate_limited';
  if (status >= 500) return 'internal';
  return 'unknown';
}

function errorFrom(status, text) {
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (body && typeof body === 'object') {
    // `{code, message}`, or `{error: {code, message}}` from some layers.
    const e = body.error && typeof body.error === 'object' ? body.error : body;
    if (typeof e.code === 'string' && e.code) return new ApiError(status, e.code, e.message);
  }
  return new ApiError(status, codeOfStatus(status), text ? text.slice(0, 200) : '');
}

/**
 * Sends `method path` with an optional JSON `body`; resolves with the JSON
 * answer (null for an empty one), rejects with an ApiError.
 */
export async function apiRequest(method, path, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'network', String(e));
  }
  const text = await resp.text().catch(() => '');
  if (!resp.ok) throw errorFrom(resp.status, text);
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch (_) {
    throw new ApiError(resp.status, 'internal', 'the answer is not JSON');
  }
}

/**
 * Posts a multipart form with upload progress (`onProgress(loaded, total)`);
 * resolves with the JSON answer, rejects with an ApiError.
 */
export function apiUpload(path, { token, form, onProgress }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Accept', 'application/json');
    if (onProgress) {
      xhr.upload.addEventListener('progress', (ev) => {
        if (ev.lengthComputable) onProgress(ev.loaded, ev.total);
      });
    }
    xhr.addEventListener('load', () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(xhr.responseText ? JSON.parse(xhr.responseText) : null);
        } catch (_) {
          reject(new ApiError(xhr.status, 'internal', 'the answer is not JSON'));
        }
      } else {
        reject(errorFrom(xhr.status, xhr.responseText));
      }
    });
    // A server that refuses a large body early may reset the connection:
    // the browser then reports a network error without a status.
    xhr.addEventListener('error', () => reject(new ApiError(0, 'network', 'upload failed')));
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'aborted', 'upload aborted')));
    xhr.send(form);
  });
}

/** The file name of a Content-Disposition header, if any. */
function filenameOf(disposition) {
  if (!disposition) return null;
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(disposition);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch (_) {
      // fall through to the plain name
    }
  }
  const plain = /filename\s*=\s*"?([^";]+)"?/.exec(disposition);
  return plain ? plain[1].trim() : null;
}

/** GETs `path` as a blob: resolves with `{blob, filename}`. */
export async function apiBlob(path, { token } = {}) {
  let resp;
  try {
    resp = await fetch(path, {
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      cache: 'no-store',
    });
  } catch (e) {
    throw new ApiError(0, 'network', String(e));
  }
  if (!resp.ok) throw errorFrom(resp.status, await resp.text().catch(() => ''));
  const blob = await resp.blob();
  return { blob, filename: filenameOf(resp.headers.get('Content-Disposition')) };
}
