// The join page without a (working) link: "Nhập mã tham dự". A bridge point
// that got its short code by phone or on paper types it here; the server
// answers the invitation's token (POST /api/invitation/code), and the page
// goes on as if the link had been opened.

import { errorText, t } from './i18n.js';
import { fetchInvitation } from './protocol.js';

const $ = (id) => document.getElementById(id);

/** The text of a refused code, in the page's language. */
function codeErrorText(code, body) {
  if (code === 'invitation_not_found') return t('join.code.unknown');
  if (code === 'too_many_attempts') return t('join.code.tooMany');
  if (code === 'invalid_input') return t('join.code.unknown');
  if (code === 'network') return t('join.code.network');
  return errorText(code) || (body && body.message) || code;
}

/**
 * Shows the code form. `onContact(text)` gets whom to call
 * (server.contact), learnt from the server, so the page can show it.
 */
export function setupCodeEntry(onContact) {
  const form = $('code-form');
  if (!form) return;
  form.hidden = false;
  const input = $('code-input');
  const error = $('code-error');
  const submit = $('code-submit');
  // Whom to call: the invitation check tells it even without a token.
  fetchInvitation('').catch((e) => {
    if (e && e.contact) onContact(e.contact);
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const code = input.value.trim();
    if (!code) {
      error.textContent = t('join.code.empty');
      error.hidden = false;
      input.focus();
      return;
    }
    submit.disabled = true;
    let resp = null;
    let body = null;
    try {
      resp = await fetch('/api/invitation/code', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ code }),
        cache: 'no-store',
      });
      body = await resp.json().catch(() => null);
    } catch (_) {
      resp = null;
    }
    submit.disabled = false;
    if (resp && resp.ok && body && typeof body.token === 'string') {
      // The page starts over with the invitation, as from its link.
      window.location.hash = body.token;
      return;
    }
    const errCode = !resp ? 'network' : (body && body.code) || 'internal';
    if (body && typeof body.contact === 'string' && body.contact) onContact(body.contact);
    error.textContent = codeErrorText(errCode, body);
    error.dataset.code = errCode;
    error.hidden = false;
    input.focus();
    input.select();
  });
  input.focus();
}
