// The audit log page of the admin pages (#/audit, admin accounts only):
// filters (actor, action or `prefix.*`, target, time range), pages newest
// first with the server's cursor ("more"), CSV / JSON-lines export, and the
// chain check. REST: GET /api/audit, /api/audit/export, /api/audit/verify
// (docs/api.md#the-audit-log).

import { apiBlob } from './api.js';
import { el, formatTime, saveBlob } from './documents.js';
import { t } from './i18n.js';

const PAGE = 50;

/** The filters kept while the page is open (a language switch re-renders). */
const filter = { actor: '', action: '', target_type: '', target_id: '', from: '', to: '' };

/** Unix seconds of a `datetime-local` value, or ''. */
function seconds(v) {
  if (!v) return '';
  const ms = new Date(v).getTime();
  return Number.isNaN(ms) ? '' : String(Math.floor(ms / 1000));
}

/** The query string of the current filters (without paging). */
function query() {
  const q = new URLSearchParams();
  for (const k of ['actor', 'action', 'target_type', 'target_id']) {
    if (filter[k].trim()) q.set(k, filter[k].trim());
  }
  const from = seconds(filter.from);
  const to = seconds(filter.to);
  if (from) q.set('from', from);
  if (to) q.set('to', to);
  return q;
}

function detailText(d) {
  if (d === null || d === undefined) return '';
  if (typeof d === 'object' && Object.keys(d).length === 0) return '';
  return JSON.stringify(d);
}

/**
 * Renders the page into `view`. `ctx`: { api(method, path), token(),
 * showAlert(container, e), clearAlert(container) } from admin.js.
 */
export async function auditView(view, ctx) {
  view.textContent = '';
  const head = el('div', { class: 'view-head' }, el('h1', { text: t('audit.title') }));
  const help = el('p', { class: 'muted', text: t('audit.help') });

  const input = (key, type, labelKey, placeholder) => {
    const i = el('input', { type, id: `audit-filter-${key}`, name: key, value: filter[key], placeholder: placeholder || null });
    i.addEventListener('change', () => {
      filter[key] = i.value;
    });
    return el('label', { class: 'field' }, el('span', { text: t(labelKey) }), i);
  };
  const form = el(
    'form',
    { class: 'filters', role: 'search', id: 'audit-filters' },
    input('actor', 'text', 'audit.actor', 'user:…'),
    input('action', 'text', 'audit.action', 'auth.*'),
    input('target_type', 'text', 'audit.targetType'),
    input('target_id', 'text', 'audit.targetId'),
    input('from', 'datetime-local', 'audit.from'),
    input('to', 'datetime-local', 'audit.to'),
    el('div', { class: 'filter-actions' }, el('button', { type: 'submit', class: 'btn btn-primary', id: 'audit-apply' }, t('audit.apply'))),
  );

  const status = el('p', { class: 'audit-verify', id: 'audit-verify-result', role: 'status' });
  const tools = el(
    'div',
    { class: 'row-actions audit-tools' },
    el('button', { type: 'button', class: 'btn btn-secondary', id: 'audit-export-csv', onclick: () => exportAs('csv') }, t('audit.exportCsv')),
    el('button', { type: 'button', class: 'btn btn-secondary', id: 'audit-export-jsonl', onclick: () => exportAs('jsonl') }, t('audit.exportJsonl')),
    el('button', { type: 'button', class: 'btn btn-secondary', id: 'audit-verify', onclick: () => verify() }, t('audit.verify')),
  );

  const tbody = el('tbody', { id: 'audit-rows' });
  const table = el(
    'table',
    { class: 'data-table', id: 'audit-table' },
    el('thead', {}, el('tr', {}, ['audit.seq', 'audit.time', 'audit.actor', 'audit.action', 'audit.target', 'audit.detail'].map((k) => el('th', { scope: 'col', text: t(k) })))),
    tbody,
  );
  const empty = el('p', { class: 'muted empty', id: 'audit-empty', text: t('audit.empty'), hidden: true });
  const more = el('button', { type: 'button', class: 'btn btn-secondary', id: 'audit-more', hidden: true }, t('audit.more'));
  view.append(head, help, form, tools, status, el('div', { class: 'table-box' }, table), empty, more);

  let next = null;
  const load = async (append) => {
    ctx.clearAlert(view);
    const q = query();
    q.set('limit', String(PAGE));
    if (append && next !== null) q.set('before', String(next));
    let page;
    try {
      page = await ctx.api('GET', `/api/audit?${q}`);
    } catch (e) {
      ctx.showAlert(view, e);
      return;
    }
    if (!append) tbody.textContent = '';
    for (const r of page.entries || []) {
      tbody.append(
        el(
          'tr',
          { dataset: { seq: String(r.seq), action: r.action } },
          el('td', { text: String(r.seq) }),
          el('td', {}, el('time', { datetime: new Date(r.at * 1000).toISOString(), text: formatTime(r.at) })),
          el('td', { class: 'mono', text: r.actor }),
          el('td', { class: 'mono', text: r.action }),
          el('td', { class: 'mono', text: `${r.target_type} ${r.target_id}` }),
          el('td', { class: 'mono audit-detail', text: detailText(r.detail) }),
        ),
      );
    }
    next = page.next_before ?? null;
    more.hidden = next === null;
    empty.hidden = tbody.childElementCount > 0;
  };

  const exportAs = async (format) => {
    ctx.clearAlert(view);
    const q = query();
    q.set('format', format);
    try {
      const { blob, filename } = await apiBlob(`/api/audit/export?${q}`, { token: ctx.token() });
      saveBlob(blob, filename || `giaoban-audit.${format}`);
    } catch (e) {
      ctx.showAlert(view, e);
    }
  };

  const verify = async () => {
    ctx.clearAlert(view);
    status.textContent = t('audit.verifying');
    status.className = 'audit-verify';
    try {
      const v = await ctx.api('GET', '/api/audit/verify');
      if (v.ok) {
        status.textContent = t('audit.verifyOk');
        status.classList.add('audit-ok');
      } else {
        status.textContent = t('audit.verifyBad', { problem: t(`audit.problem.${v.problem}`), seq: v.seq, detail: v.detail || '' });
        status.classList.add('alert', 'alert-error');
      }
      status.dataset.problem = v.ok ? '' : v.problem;
    } catch (e) {
      status.textContent = '';
      ctx.showAlert(view, e);
    }
  };

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    for (const k of Object.keys(filter)) {
      const i = form.querySelector(`[name="${k}"]`);
      if (i) filter[k] = i.value;
    }
    load(false);
  });
  more.addEventListener('click', () => load(true));
  await load(false);
}
