// The invitee's answer on the join page ("Xác nhận tham dự"): attend,
// absent with a reason, or send a substitute with name and position
// (PUT /api/invitation/answer, docs/api.md "Answers to invitations").

import { t, errorText, onLangChange } from './i18n.js';

const $ = (id) => document.getElementById(id);

/** The answer in words, e.g. "Vắng mặt: Trùng lịch". */
function answerText(a) {
  if (!a) return t('rsvp.none');
  if (a.answer === 'absent') return t('rsvp.nowAbsent', { reason: a.reason });
  if (a.answer === 'substitute') {
    const who = a.substitute_position ? `${a.substitute_name} (${a.substitute_position})` : a.substitute_name;
    return t('rsvp.nowSubstitute', { who });
  }
  return t('rsvp.nowAttend');
}

/**
 * Shows the form under the invitation and sends the answer.
 * @param {string} token the invitation token
 * @param {object} invitation GET /api/invitation's answer
 */
export function setupRsvp(token, invitation) {
  const form = $('rsvp-form');
  if (!form || !invitation) return;
  let current = invitation.answer || null;
  const choice = () => {
    const c = form.querySelector('input[name="rsvp"]:checked');
    return c ? c.value : null;
  };
  const sync = () => {
    const c = choice();
    $('rsvp-reason-field').hidden = c !== 'absent';
    $('rsvp-sub-fields').hidden = c !== 'substitute';
    $('rsvp-send').disabled = !c;
  };
  const render = () => {
    $('rsvp-current').textContent = answerText(current);
  };
  if (current) {
    const r = form.querySelector(`input[name="rsvp"][value="${current.answer}"]`);
    if (r) r.checked = true;
    $('rsvp-reason').value = current.reason || '';
    $('rsvp-sub-name').value = current.substitute_name || '';
    $('rsvp-sub-position').value = current.substitute_position || '';
  }
  form.addEventListener('change', sync);
  onLangChange(render);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const answer = choice();
    if (!answer) return;
    const body = { answer };
    if (answer === 'absent') body.reason = $('rsvp-reason').value.trim();
    if (answer === 'substitute') {
      body.substitute_name = $('rsvp-sub-name').value.trim();
      body.substitute_position = $('rsvp-sub-position').value.trim();
    }
    const err = $('rsvp-error');
    err.hidden = true;
    if (answer === 'absent' && !body.reason) {
      err.textContent = t('rsvp.needReason');
      err.hidden = false;
      return;
    }
    if (answer === 'substitute' && !body.substitute_name) {
      err.textContent = t('rsvp.needName');
      err.hidden = false;
      return;
    }
    $('rsvp-send').disabled = true;
    try {
      const resp = await fetch('/api/invitation/answer', {
        method: 'PUT',
        headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
        cache: 'no-store',
      });
      let v = null;
      try {
        v = await resp.json();
      } catch (_) {
        v = null;
      }
      if (!resp.ok) {
        err.textContent = (v && v.code && errorText(v.code)) || t('rsvp.failed');
        err.hidden = false;
      } else {
        current = v && v.answer;
        render();
        $('rsvp-current').textContent = `${answerText(current)} ${t('rsvp.saved')}`;
      }
    } catch (_) {
      err.textContent = t('rsvp.failed');
      err.hidden = false;
    }
    sync();
  });
  sync();
  render();
  form.hidden = false;
}
