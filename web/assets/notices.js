// The invitation's notices on the join page and the waiting screen
// ("Thông báo"): the invitation was sent, the reminder before the meeting,
// documents added, replaced, versioned or withdrawn since the invitation
// (GET /api/invitation/notices, docs/api.md "Notices of an invitation").
// Read again every minute while the page is open.

import { t, onLangChange } from './i18n.js';
import { formatTime } from './documents.js';

const REFRESH_MS = 60_000;

/** One notice in words. */
function noticeText(n) {
  if (n.kind === 'invitation') return t('notices.invitation');
  if (n.kind === 'reminder') return t('notices.reminder', { when: formatTime(n.starts_at) });
  if (n.change === 'replaced' && n.replaces_title) return t('notices.doc.replacedNamed', { title: n.title, old: n.replaces_title });
  if (n.change === 'new_version') return t('notices.doc.new_version', { title: n.title, n: n.version });
  return t(`notices.doc.${n.change}`, { title: n.title });
}

function render(box, list) {
  box.textContent = '';
  box.hidden = list.length === 0;
  if (list.length === 0) return;
  const h = document.createElement('h2');
  h.textContent = t('notices.title');
  const ul = document.createElement('ul');
  ul.className = 'notice-list';
  for (const n of list) {
    const li = document.createElement('li');
    li.dataset.kind = n.kind;
    if (n.change) li.dataset.change = n.change;
    const time = document.createElement('time');
    time.className = 'muted';
    time.dateTime = new Date(n.at * 1000).toISOString();
    time.textContent = formatTime(n.at);
    const text = document.createElement('span');
    text.className = 'notice-text';
    text.textContent = noticeText(n);
    li.append(time, ' ', text);
    if (n.email) {
      const mail = document.createElement('small');
      mail.className = 'muted notice-mail';
      mail.textContent = ` (${t(`notices.email.${n.email}`)})`;
      li.append(mail);
    }
    ul.append(li);
  }
  box.append(h, ul);
}

/**
 * Fills each of `boxes` (elements, hidden while empty) with the notices of
 * the invitation `token`, now and every minute.
 */
export function setupNotices(token, boxes) {
  let list = [];
  const draw = () => {
    for (const b of boxes) if (b) render(b, list);
  };
  const load = async () => {
    try {
      const r = await fetch('/api/invitation/notices', { headers: { Authorization: `Bearer ${token}` }, cache: 'no-store' });
      if (!r.ok) return;
      const v = await r.json();
      list = Array.isArray(v.notices) ? v.notices : [];
      draw();
    } catch (_) {
      // Offline for a moment: the next round tries again.
    }
  };
  onLangChange(draw);
  load();
  const timer = window.setInterval(load, REFRESH_MS);
  return { reload: load, stop: () => window.clearInterval(timer) };
}
