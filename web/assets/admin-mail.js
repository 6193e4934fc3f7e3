// The e-mail line of a meeting's invitations tab in /admin: how many
// e-mails were sent, are waiting (with the last SMTP error) or failed, which
// units have no address, and a button that e-mails the invitations not sent
// yet (GET /api/meetings/{id}/mail, POST /api/meetings/{id}/mail/invitations;
// docs/api.md "E-mail").

import { t } from './i18n.js';

/** Fills `box` (an empty element already on the page) for `meeting`. */
export async function fillMailLine(box, meeting, ctx) {
  const path = `/api/meetings/${encodeURIComponent(meeting.id)}/mail`;
  let v;
  try {
    v = await ctx.api('GET', path);
  } catch (e) {
    ctx.showAlert(box, e);
    return;
  }
  render(box, meeting, v, ctx, path);
}

function render(box, meeting, v, ctx, path) {
  box.textContent = '';
  box.dataset.pending = String(v.counts ? v.counts.pending : 0);
  box.dataset.sent = String(v.counts ? v.counts.sent : 0);
  box.dataset.failed = String(v.counts ? v.counts.failed : 0);
  const line = document.createElement('span');
  if (!v.enabled) {
    line.textContent = t('mail.off');
    box.append(line);
    return;
  }
  if (!v.invitations_sent) {
    line.textContent = t('mail.notYet');
  } else {
    line.textContent = t('mail.summary', v.counts);
    const last = (v.messages || []).filter((m) => m.status !== 'sent' && m.last_error).pop();
    if (last) line.textContent += ` ${t('mail.lastError', { to: last.to_name, error: last.last_error })}`;
  }
  box.append(line);
  const missing = (v.without_email || []).map((x) => x.name);
  if (missing.length) {
    const p = document.createElement('span');
    p.className = 'mail-missing';
    p.textContent = ` ${t('mail.noAddress', { names: missing.join(', ') })}`;
    box.append(p);
  }
  if (v.invitations_sent && ctx.canPrepare) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'btn btn-secondary btn-small';
    b.id = 'mail-send-invitations';
    b.textContent = t('mail.send');
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        const r = await ctx.api('POST', `${path}/invitations`);
        ctx.toast(t('mail.queued', { n: r.queued || 0 }));
        render(box, meeting, r, ctx, path);
      } catch (e) {
        ctx.showAlert(box, e);
        b.disabled = false;
      }
    });
    box.append(' ', b);
  }
}
