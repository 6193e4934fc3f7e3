// The secretariat's written opinion ballots ("Phiếu lấy ý kiến thành viên
// UBND"): create a request (question, deadline, recipients, rule), the list
// with each deadline counting down and the tally, one request's answers,
// who has not answered, in-app reminders, close, the result. Routes:
//
//   #/opinions        the list and the form to create one
//   #/opinions/ID     one request
//
// REST: /api/opinions... (docs/api.md "Written opinions"). Recipients
// answer at /opinion#<token> (opinion.js).

import { apiBlob, apiUpload } from './api.js';
import { el, formatTime } from './documents.js';
import { t } from './i18n.js';

/** The secretariat's token, as /admin keeps it (for uploads and downloads,
 * which ctx.api does not do). */
function staffToken() {
  try {
    const s = JSON.parse(window.sessionStorage.getItem('giaoban.staff') || 'null');
    return (s && s.token) || '';
  } catch (_) {
    return '';
  }
}

/** A recipient line: "Name" or "Name; e-mail" (also "Name <e-mail>"). */
function recipientOf(line) {
  const m = line.match(/^(.*?)\s*(?:[;,]\s*|<)([^\s<>;,]+@[^\s<>;,]+?)>?\s*$/);
  return m && m[1] ? { name: m[1].trim(), email: m[2] } : { name: line, email: '' };
}

const RULES = ['all_members_majority', 'present_majority', 'two_thirds_all'];
const PREPARE = ['admin', 'secretary'];

/** "còn 2 ngày 3 giờ" / "đã hết hạn". */
export function countdown(deadline, now) {
  let s = deadline - (now || Math.floor(Date.now() / 1000));
  if (s <= 0) return t('opinion.deadlinePassed');
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.max(1, Math.ceil(s / 60));
  let left;
  if (d > 0) left = t('opinion.leftDays', { d, h });
  else if (h > 0) left = t('opinion.leftHours', { h, m: m % 60 });
  else left = t('opinion.leftMinutes', { m });
  return t('opinion.left', { left });
}

function tallyText(r) {
  const x = r.tally || { for: 0, against: 0, abstain: 0 };
  return t('opinion.tally', {
    agree: x.for,
    disagree: x.against,
    other: x.abstain,
    answered: r.answered,
    recipients: r.recipients,
  });
}

function resultText(o) {
  return t('opinion.result', {
    verdict: o.passed ? t('opinion.passed') : t('opinion.notPassed'),
    agree: o.tally.for,
    disagree: o.tally.against,
    other: o.tally.abstain,
    base: o.base,
    needed: o.needed,
  });
}

function statusText(r) {
  if (r.status === 'closed') return t('opinion.closed');
  return countdown(r.deadline);
}

/** A `datetime-local` value for Unix seconds (local time). */
function localInput(unix) {
  const d = new Date(unix * 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/**
 * #/opinions. `ctx`: { api(method, path, body), user(), showAlert(container,
 * e), clearAlert(container), toast(text), go(hash) } from admin.js.
 */
export async function opinionsView(view, ctx) {
  const list = await ctx.api('GET', '/api/opinions');
  view.textContent = '';
  const canPrepare = PREPARE.includes((ctx.user() || {}).role);
  const head = el('div', { class: 'view-head' }, el('h1', { text: t('opinion.adminTitle') }));
  view.append(head, el('p', { class: 'muted', text: t('opinion.adminHelp') }));

  if (canPrepare) {
    const input = (id, type, key, extra) =>
      el('label', { class: 'field' }, el('span', { text: t(key) }), el(type === 'textarea' ? 'textarea' : 'input', { id, type: type === 'textarea' ? null : type, ...extra }));
    const rule = el(
      'select',
      { id: 'opinion-rule' },
      RULES.map((r) => el('option', { value: r, text: t(`opinion.rule.${r}`) })),
    );
    const form = el(
      'form',
      { class: 'card form-grid', id: 'opinion-new', novalidate: true },
      el('h2', { text: t('opinion.create') }),
      input('opinion-new-title', 'text', 'opinion.fieldTitle', { maxlength: 300, required: true }),
      input('opinion-new-question', 'textarea', 'opinion.fieldQuestion', { rows: 4, maxlength: 10000, required: true }),
      input('opinion-new-deadline', 'datetime-local', 'opinion.deadline', {
        required: true,
        value: localInput(Math.floor(Date.now() / 1000) + 3 * 86400),
      }),
      el('label', { class: 'field' }, el('span', { text: t('opinion.fieldRule') }), rule),
      input('opinion-new-recipients', 'textarea', 'opinion.fieldRecipients', { rows: 6, required: true }),
      input('opinion-new-chair', 'text', 'opinion.fieldChair', { maxlength: 200 }),
      input('opinion-new-committee', 'number', 'opinion.fieldCommittee', { min: 1 }),
      el(
        'label',
        { class: 'field-check' },
        el('input', { type: 'checkbox', id: 'opinion-new-changes' }),
        el('span', { text: t('opinion.fieldChanges') }),
      ),
      el('div', { class: 'form-actions' }, el('button', { type: 'submit', class: 'btn btn-primary', id: 'opinion-new-submit' }, t('opinion.create'))),
    );
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      ctx.clearAlert(form);
      const names = form
        .querySelector('#opinion-new-recipients')
        .value.split('\n')
        .map((s) => s.trim())
        .filter(Boolean)
        .map(recipientOf);
      const chair = form.querySelector('#opinion-new-chair').value.trim();
      if (chair && !names.some((r) => r.name === chair)) {
        ctx.showAlert(form, t('opinion.chairNotListed'));
        return;
      }
      const when = new Date(form.querySelector('#opinion-new-deadline').value).getTime();
      const committee = form.querySelector('#opinion-new-committee').value;
      const body = {
        title: form.querySelector('#opinion-new-title').value,
        question: form.querySelector('#opinion-new-question').value,
        deadline: Number.isNaN(when) ? 0 : Math.floor(when / 1000),
        rule: rule.value,
        allow_changes: form.querySelector('#opinion-new-changes').checked,
        committee_members: committee ? Number(committee) : null,
        recipients: names.map((r) => ({ name: r.name, email: r.email, chair: r.name === chair })),
      };
      try {
        const created = await ctx.api('POST', '/api/opinions', body);
        ctx.toast(t('opinion.created'));
        ctx.go(`#/opinions/${encodeURIComponent(created.request.id)}`);
      } catch (e) {
        ctx.showAlert(form, e);
      }
    });
    view.append(form);
  }

  if (!list.length) {
    view.append(el('p', { class: 'muted empty', id: 'opinion-empty', text: t('opinion.none') }));
    return;
  }
  const table = el(
    'table',
    { class: 'data-table', id: 'opinion-table' },
    el(
      'thead',
      null,
      el(
        'tr',
        null,
        ['opinion.fieldTitle', 'opinion.deadline', 'opinion.status', 'opinion.tallyHead'].map((k) => el('th', { text: t(k) })),
      ),
    ),
    el(
      'tbody',
      null,
      list.map((r) =>
        el(
          'tr',
          { dataset: { id: r.id } },
          el('td', null, el('a', { href: `#/opinions/${encodeURIComponent(r.id)}`, text: r.title })),
          el('td', { text: formatTime(r.deadline) }),
          el('td', { class: 'opinion-countdown', text: statusText(r) }),
          el('td', { text: r.outcome ? `${tallyText(r)} · ${r.outcome.passed ? t('opinion.passed') : t('opinion.notPassed')}` : tallyText(r) }),
        ),
      ),
    ),
  );
  view.append(el('div', { class: 'table-box' }, table));
}

/** #/opinions/ID; `ctx` as for opinionsView, plus copyText(text). */
export async function opinionView(view, id, ctx) {
  const d = await ctx.api('GET', `/api/opinions/${encodeURIComponent(id)}`);
  const r = d.request;
  view.textContent = '';
  const canPrepare = PREPARE.includes((ctx.user() || {}).role);
  const open = r.status === 'open';
  const passed = Math.floor(Date.now() / 1000) >= r.deadline;
  view.append(
    el('p', null, el('a', { href: '#/opinions', text: t('opinion.back') })),
    el('div', { class: 'view-head' }, el('h1', { text: r.title })),
    el('p', { class: 'opinion-question', id: 'opinion-question', text: r.question }),
    el(
      'dl',
      { class: 'invite-details' },
      el('dt', { text: t('opinion.deadline') }),
      el('dd', null, `${formatTime(r.deadline)} `, el('span', { class: 'status-badge', id: 'opinion-status', text: statusText(r) })),
      el('dt', { text: t('opinion.fieldRule') }),
      el('dd', { text: `${t(`opinion.rule.${r.rule}`)}${r.allow_changes ? ` · ${t('opinion.changesAllowed')}` : ''}` }),
      el('dt', { text: t('opinion.tallyHead') }),
      el('dd', { id: 'opinion-tally', text: tallyText(r) }),
    ),
  );
  if (r.outcome) {
    view.append(
      el('div', { class: `alert ${r.outcome.passed ? 'alert-success' : 'alert-error'}`, id: 'opinion-result', role: 'status', text: resultText(r.outcome) }),
      el('p', {
        class: 'muted',
        text: t(r.closed_by === 'system:deadline' ? 'opinion.closedAtDeadline' : 'opinion.closedBy', { at: formatTime(r.closed_at) }),
      }),
    );
  }
  view.append(
    el('h2', { text: t('opinion.notAnswered') }),
    el('p', { id: 'opinion-not-answered', text: d.not_answered.length ? d.not_answered.join(', ') : t('opinion.everyoneAnswered') }),
  );

  view.append(documentsSection(view, id, d, canPrepare && open && !passed, ctx));

  if (canPrepare && open) {
    const message = el('input', { type: 'text', id: 'opinion-remind-message', maxlength: 5000, placeholder: t('opinion.remindMessage') });
    const actions = el(
      'div',
      { class: 'row-actions' },
      message,
      el(
        'button',
        {
          type: 'button',
          class: 'btn btn-secondary',
          id: 'opinion-remind',
          disabled: passed || d.not_answered.length === 0,
          onclick: async () => {
            try {
              const res = await ctx.api('POST', `/api/opinions/${encodeURIComponent(r.id)}/remind`, { message: message.value });
              ctx.toast(t('opinion.reminded', { n: res.reminders.length }));
              await opinionView(view, id, ctx);
            } catch (e) {
              ctx.showAlert(view, e);
            }
          },
        },
        t('opinion.remind'),
      ),
      el(
        'button',
        {
          type: 'button',
          class: 'btn btn-danger',
          id: 'opinion-close',
          onclick: async () => {
            if (!(await ctx.confirm(t('opinion.close'), t('opinion.closeAsk'), t('opinion.close'), true))) return;
            try {
              await ctx.api('POST', `/api/opinions/${encodeURIComponent(r.id)}/close`);
              await opinionView(view, id, ctx);
            } catch (e) {
              ctx.showAlert(view, e);
            }
          },
        },
        t('opinion.close'),
      ),
    );
    view.append(actions);
  }

  const rows = d.recipients.map((p) => {
    // (The e-mail address, when given, shows beside the name.)
    const a = p.answer;
    const cells = [
      el('td', { text: `${p.is_chair ? `${p.name} (${t('opinion.chair')})` : p.name}${p.email ? ` · ${p.email}` : ''}` }),
      el('td', { class: 'opinion-answer', text: a ? t(`opinion.${a.answer}`) : '—' }),
      el('td', { text: a ? a.comment : '' }),
      el('td', { text: a ? formatTime(a.answered_at) : '' }),
      el('td', { text: p.reminders ? t('opinion.reminders', { n: p.reminders, at: formatTime(p.last_reminded_at) }) : '' }),
    ];
    if (canPrepare) {
      cells.push(
        el(
          'td',
          null,
          p.url
            ? el(
                'button',
                {
                  type: 'button',
                  class: 'btn btn-small btn-secondary',
                  dataset: { url: p.url },
                  onclick: async () => {
                    const ok = await ctx.copyText(p.url);
                    ctx.toast(ok ? t('opinion.linkCopied') : p.url);
                  },
                },
                t('opinion.copyLink'),
              )
            : null,
        ),
      );
    }
    return el('tr', { dataset: { recipient: p.id, name: p.name } }, cells);
  });
  const heads = ['opinion.member', 'opinion.answer', 'opinion.commentHead', 'opinion.answeredAt', 'opinion.remindersHead'];
  if (canPrepare) heads.push('opinion.link');
  view.append(
    el('h2', { text: t('opinion.answers') }),
    el(
      'div',
      { class: 'table-box' },
      el(
        'table',
        { class: 'data-table', id: 'opinion-recipients' },
        el('thead', null, el('tr', null, heads.map((k) => el('th', { text: t(k) })))),
        el('tbody', null, rows),
      ),
    ),
  );
}

/** The request's documents: download (staff), and attach while open. */
function documentsSection(view, id, d, canAttach, ctx) {
  const box = el('section', { id: 'opinion-documents', 'aria-labelledby': 'opinion-documents-heading' });
  box.append(el('h2', { id: 'opinion-documents-heading', text: t('opinion.documents') }));
  const docs = d.documents || [];
  const list = el('ul', { class: 'opinion-documents' });
  for (const doc of docs) {
    list.append(
      el(
        'li',
        { dataset: { documentId: doc.id } },
        `${doc.title} (${String(doc.file_type).toUpperCase()}) `,
        el(
          'button',
          {
            type: 'button',
            class: 'btn btn-small btn-secondary',
            onclick: async () => {
              try {
                const { blob, filename } = await apiBlob(`/api/opinions/${encodeURIComponent(id)}/documents/${encodeURIComponent(doc.id)}`, { token: staffToken() });
                const url = URL.createObjectURL(blob);
                const a = el('a', { href: url, download: filename || doc.filename });
                document.body.append(a);
                a.click();
                a.remove();
                setTimeout(() => URL.revokeObjectURL(url), 60_000);
              } catch (e) {
                ctx.showAlert(box, e);
              }
            },
          },
          t('opinion.download'),
        ),
      ),
    );
  }
  if (docs.length) box.append(list);
  if (canAttach) {
    const file = el('input', { type: 'file', id: 'opinion-document-file' });
    const attach = el(
      'button',
      {
        type: 'button',
        class: 'btn btn-secondary',
        id: 'opinion-document-attach',
        onclick: async () => {
          if (!file.files || !file.files[0]) return;
          const form = new FormData();
          form.append('file', file.files[0]);
          attach.disabled = true;
          try {
            await apiUpload(`/api/opinions/${encodeURIComponent(id)}/documents`, { token: staffToken(), form });
            ctx.toast(t('opinion.attached'));
            await opinionView(view, id, ctx);
          } catch (e) {
            attach.disabled = false;
            ctx.showAlert(box, e);
          }
        },
      },
      t('opinion.attach'),
    );
    box.append(el('div', { class: 'row-actions' }, file, attach));
  }
  return box;
}
