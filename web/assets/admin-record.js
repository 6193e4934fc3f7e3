// The record of a meeting on the secretariat's pages: its attendance
// ("Điểm danh", #/meetings/ID/attendance) and its votes ("Biểu quyết",
// #/meetings/ID/votes). REST (docs/api.md): GET /api/meetings/{id}/attendance
// (+ .csv), PUT /api/meetings/{id}/attendance/{invitation_id},
// GET /api/meetings/{id}/polls, GET /api/polls/{id}.
//
// Both tabs read again every RECORD_REFRESH_MS while they are on the page.
// The marks are for admins and secretaries (operators read). Strings in
// i18n.js (`att.*`, `polls.*`).

import { apiBlob } from './api.js';
import { el, formatTime, saveBlob } from './documents.js';
import { hasText, roleText, t } from './i18n.js';

/** How often the attendance and votes tabs read again while shown. */
export const RECORD_REFRESH_MS = 10000;

const MARKS = ['present_in_hall', 'excused'];

/** Seconds as "1 giờ 05 phút" / "12 phút" / "dưới 1 phút". */
function durationOf(seconds) {
  const m = Math.floor((Number(seconds) || 0) / 60);
  if (m < 1) return seconds > 0 ? t('att.lessThanMinute') : '';
  const h = Math.floor(m / 60);
  if (h === 0) return t('att.minutes', { m });
  return t('att.hoursMinutes', { h, m: String(m % 60).padStart(2, '0') });
}

/** hh:mm:ss now, for "updated at". */
function clock() {
  const d = new Date();
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Whether the row's invitation is connected now (an open interval). */
function connected(row) {
  return Array.isArray(row.intervals) && row.intervals.some((i) => i.left_at === null || i.left_at === undefined);
}

/** The row's state: connected, in_hall, excused or absent. */
function stateOf(row) {
  if (connected(row)) return 'connected';
  if (row.mark === 'present_in_hall') return 'in_hall';
  if (row.mark === 'excused') return 'excused';
  return 'absent';
}

function answerOf(a) {
  if (!a) return t('invite.ans.none');
  return hasText(`invite.ans.${a}`) ? t(`invite.ans.${a}`) : String(a);
}

/** A cell with its column's name (shown in front of it on narrow screens). */
function td(labelKey, props, ...children) {
  return el('td', { ...(props || {}), 'data-label': t(labelKey) }, ...children);
}

/**
 * The attendance tab. `ctx`: { api(method, path, body), token(),
 * showAlert(container, e), clearAlert(container), toast(text), canMark }.
 */
export async function attendanceTab(body, meeting, ctx) {
  const mid = encodeURIComponent(meeting.id);
  const path = `/api/meetings/${mid}/attendance`;
  const updated = el('p', { class: 'muted live-updated', id: 'attendance-updated', role: 'status' });
  const csv = el('a', { class: 'btn btn-secondary btn-small', id: 'attendance-csv', href: `${path}.csv`, download: 'attendance.csv' }, t('att.csv'));
  csv.addEventListener('click', async (ev) => {
    // The download needs the token: fetched, then saved.
    ev.preventDefault();
    try {
      const { blob, filename } = await apiBlob(`${path}.csv`, { token: ctx.token() });
      saveBlob(blob, filename || 'attendance.csv');
    } catch (e) {
      ctx.showAlert(body, e);
    }
  });
  const summary = el('div', { class: 'att-summary', id: 'attendance-summary' });
  const tableBox = el('div', { id: 'attendance-content' });
  body.append(
    el('div', { class: 'view-head' }, el('h2', { text: t('meeting.tab.attendance') }), csv),
    el('p', { class: 'muted', text: t('att.help') }),
    updated,
    summary,
    tableBox,
  );
  /** The invitation whose mark form is open (the table is not redrawn under it). */
  let editing = null;
  let report = null;

  const refresh = async () => {
    report = await ctx.api('GET', path);
    if (!body.isConnected) return;
    ctx.clearAlert(body);
    renderSummary(summary, report.summary || {});
    if (editing === null) renderTable();
    updated.textContent = t('att.updated', { time: clock() });
  };

  const save = async (row, mark, note) => {
    try {
      await ctx.api('PUT', `${path}/${encodeURIComponent(row.invitation_id)}`, { mark, note: mark ? note : '' });
      ctx.toast(mark ? t(`att.marked.${mark}`, { name: row.name }) : t('att.cleared', { name: row.name }));
      editing = null;
      await refresh();
    } catch (e) {
      ctx.showAlert(body, e);
    }
  };

  const markForm = (row, mark) => {
    const note = el('input', { type: 'text', name: 'note', maxlength: 2000, value: row.mark === mark ? row.note || '' : '', placeholder: t(`att.notePlaceholder.${mark}`) });
    const form = el(
      'form',
      { class: 'att-mark-form', dataset: { mark } },
      el('label', { class: 'field' }, el('span', { text: t('att.noteFor', { mark: t(`att.mark.${mark}`) }) }), note),
      el(
        'div',
        { class: 'form-actions' },
        el('button', { type: 'button', class: 'btn btn-secondary btn-small att-cancel', onclick: () => { editing = null; renderTable(); } }, t('action.cancel')),
        el('button', { type: 'submit', class: 'btn btn-primary btn-small att-save' }, t('action.save')),
      ),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      save(row, mark, note.value.trim());
    });
    setTimeout(() => note.focus(), 0);
    return form;
  };

  const markCell = (row) => {
    const inner = el('div', { class: 'att-mark-body' });
    const cell = td('att.col.mark', { class: 'att-mark' }, inner);
    if (row.mark) {
      inner.append(el('span', { class: `att-badge att-${row.mark}`, text: t(`att.mark.${row.mark}`) }));
      if (row.note) inner.append(el('span', { class: 'att-note muted', text: row.note }));
    }
    if (!ctx.canMark || row.revoked) return cell;
    if (editing && editing.id === row.invitation_id) {
      inner.append(markForm(row, editing.mark));
      return cell;
    }
    const actions = el('div', { class: 'att-actions' });
    for (const m of MARKS) {
      if (row.mark === m) continue;
      actions.append(
        el(
          'button',
          {
            type: 'button',
            class: 'btn btn-secondary btn-small',
            dataset: { action: m },
            onclick: () => {
              editing = { id: row.invitation_id, mark: m };
              renderTable();
            },
          },
          t(`att.action.${m}`),
        ),
      );
    }
    if (row.mark) {
      actions.append(el('button', { type: 'button', class: 'btn btn-secondary btn-small', dataset: { action: 'clear' }, onclick: () => save(row, null, '') }, t('att.action.clear')));
    }
    inner.append(actions);
    return cell;
  };

  const renderTable = () => {
    tableBox.textContent = '';
    const rows = report && Array.isArray(report.rows) ? report.rows : [];
    if (rows.length === 0) {
      tableBox.append(el('p', { class: 'muted empty', id: 'attendance-empty', text: t('att.empty') }));
      return;
    }
    const heads = ['att.col.name', 'participant.role', 'att.col.present', 'att.col.firstJoin', 'att.col.time', 'att.col.declared', 'att.col.answer', 'att.col.mark'];
    tableBox.append(
      el(
        'div',
        { class: 'table-box' },
        el(
          'table',
          { class: 'data-table att-table', id: 'attendance-table' },
          el('thead', {}, el('tr', {}, heads.map((k) => el('th', { scope: 'col', text: t(k) })))),
          el(
            'tbody',
            {},
            rows.map((row) => {
              const st = stateOf(row);
              const declared = [row.leader, row.attendees !== null && row.attendees !== undefined ? t('att.attendees', { n: row.attendees }) : null].filter(Boolean).join(' · ');
              return el(
                'tr',
                {
                  class: row.revoked ? 'att-row att-revoked' : 'att-row',
                  dataset: { invitationId: row.invitation_id, role: row.role, present: String(!!row.present), state: st, mark: row.mark || '' },
                },
                td('att.col.name', { class: 'att-name' }, el('strong', { text: row.name || '' }), row.unit ? el('span', { class: 'muted att-unit', text: row.unit }) : null, row.revoked ? el('span', { class: 'muted', text: t('att.revoked') }) : null),
                td('participant.role', {}, el('span', { class: 'role-badge', text: roleText(row.role) })),
                td('att.col.present', {}, el('span', { class: `att-badge att-state-${st}`, text: t(`att.state.${st}`) })),
                td('att.col.firstJoin', { text: row.first_joined_at ? formatTime(row.first_joined_at) : '—' }),
                td('att.col.time', { text: durationOf(row.present_seconds) || '—' }),
                td('att.col.declared', { class: 'att-declared', text: declared || '—' }),
                td('att.col.answer', { text: answerOf(row.answer) }),
                markCell(row),
              );
            }),
          ),
        ),
      ),
    );
  };

  const tick = async () => {
    if (!body.isConnected || !ctx.token()) return;
    try {
      await refresh();
    } catch (e) {
      if (!body.isConnected || !ctx.token()) return;
      ctx.showAlert(body, e);
    }
    if (body.isConnected) setTimeout(tick, RECORD_REFRESH_MS);
  };
  await tick();
}

function renderSummary(box, s) {
  const stat = (key, value, extra) =>
    el('div', { class: `att-stat ${extra || ''}`.trim(), dataset: { stat: key } }, el('span', { class: 'att-num', text: String(value) }), el('span', { class: 'att-label', text: t(`att.sum.${key}`) }));
  box.textContent = '';
  const met = !!s.quorum_met;
  box.append(
    stat('expected', s.expected ?? 0),
    stat('present', s.present ?? 0),
    stat('absent', s.absent ?? 0),
    stat('excused', s.excused ?? 0),
    stat('members', `${s.members_present ?? 0}/${s.committee_members ?? 0}`),
    stat('quorum', s.quorum_needed ?? 0),
    el(
      'div',
      { class: `att-stat att-quorum ${met ? 'att-quorum-met' : 'att-quorum-missing'}`, dataset: { stat: 'quorum_met', met: String(met) } },
      el('span', { class: 'att-num', text: met ? t('att.quorumMet') : t('att.quorumMissing') }),
      el('span', { class: 'att-label', text: t('att.sum.quorumMet') }),
    ),
  );
  if (s.attendees_declared) box.append(stat('declared', s.attendees_declared));
}

// ---- votes ----------------------------------------------------------------------

function ruleText(rule) {
  return hasText(`polls.rule.${rule}`) ? t(`polls.rule.${rule}`) : String(rule || '');
}

function choiceText(c) {
  return hasText(`polls.choice.${c}`) ? t(`polls.choice.${c}`) : String(c || '');
}

/** How the result was reached, in sentences. */
function outcomeLines(o) {
  const allBase = o.rule === 'all_members_majority' || o.rule === 'two_thirds_all';
  const lines = [
    t('polls.howRule', { rule: ruleText(o.rule) }),
    t(allBase ? 'polls.howBaseAll' : 'polls.howBasePresent', { base: o.base }),
    t('polls.howNeeded', { needed: o.needed, for: o.tally ? o.tally.for : 0 }),
    t(o.quorum_met ? 'polls.howQuorumMet' : 'polls.howQuorumMissing', { present: o.present_members, members: o.committee_members, needed: o.quorum_needed }),
  ];
  if (o.tie_broken_by_chair) lines.push(t('polls.howTie'));
  return lines;
}

function pollCard(p, details) {
  const o = p.outcome;
  const closed = p.status === 'closed';
  const card = el('article', {
    class: 'card poll-card',
    dataset: { pollId: p.id, status: p.status, secret: String(!!p.secret), passed: o ? String(!!o.passed) : '' },
  });
  card.append(
    el(
      'div',
      { class: 'poll-head' },
      el('h3', { class: 'poll-question', text: p.question }),
      el('span', { class: `status-badge poll-status-${p.status}`, text: t(`polls.status.${p.status}`) }),
      o ? el('span', { class: `status-badge poll-result ${o.passed ? 'poll-passed' : 'poll-failed'}`, text: t(o.passed ? 'polls.passed' : 'polls.failed') }) : null,
    ),
    el(
      'p',
      { class: 'muted poll-meta' },
      [t(p.secret ? 'polls.secret' : 'polls.named'), ruleText(p.rule), t('polls.opened', { time: formatTime(p.opened_at) }), closed && p.closed_at ? t('polls.closed', { time: formatTime(p.closed_at) }) : null]
        .filter(Boolean)
        .join(' · '),
    ),
    el('p', { class: 'poll-turnout', text: t('polls.turnout', { voted: p.voted, eligible: p.eligible }) }),
  );
  if (o) {
    card.append(
      el(
        'ul',
        { class: 'poll-tally' },
        ['for', 'against', 'abstain'].map((c) => el('li', { dataset: { choice: c } }, el('span', { text: choiceText(c) }), el('strong', { text: String(o.tally ? o.tally[c] : 0) }))),
      ),
      el('ul', { class: 'poll-how' }, outcomeLines(o).map((line) => el('li', { text: line }))),
    );
  } else {
    card.append(el('p', { class: 'muted', text: t('polls.openNote') }));
  }
  if (details && Array.isArray(details.ballots)) {
    if (details.ballots.length === 0) card.append(el('p', { class: 'muted', text: t('polls.noBallots') }));
    else {
      card.append(
        el('h4', { text: t('polls.ballots', { n: details.ballots.length }) }),
        el(
          'div',
          { class: 'table-box' },
          el(
            'table',
            { class: 'data-table poll-ballots' },
            el('thead', {}, el('tr', {}, ['att.col.name', 'participant.role', 'polls.choice'].map((k) => el('th', { scope: 'col', text: t(k) })))),
            el(
              'tbody',
              {},
              details.ballots.map((b) =>
                el(
                  'tr',
                  { dataset: { invitationId: b.invitation_id, choice: b.choice || '' } },
                  td('att.col.name', { text: b.name }),
                  td('participant.role', {}, el('span', { class: 'role-badge', text: roleText(b.role) })),
                  td('polls.choice', { text: b.choice ? choiceText(b.choice) : t('polls.votedHidden') }),
                ),
              ),
            ),
          ),
        ),
      );
    }
  } else if (details && Array.isArray(details.voters)) {
    card.append(
      el('h4', { text: t('polls.voters', { n: details.voters.length }) }),
      el('p', { class: 'muted', text: t('polls.secretNote') }),
      details.voters.length ? el('p', { class: 'poll-voters', text: details.voters.map((v) => v.name).join(', ') }) : null,
    );
  }
  return card;
}

/** The votes tab. `ctx` as for attendanceTab. */
export async function pollsTab(body, meeting, ctx) {
  const mid = encodeURIComponent(meeting.id);
  const updated = el('p', { class: 'muted live-updated', id: 'polls-updated', role: 'status' });
  const list = el('div', { class: 'poll-list', id: 'polls-list' });
  body.append(el('h2', { text: t('meeting.tab.votes') }), el('p', { class: 'muted', text: t('polls.help') }), updated, list);

  const refresh = async () => {
    const polls = await ctx.api('GET', `/api/meetings/${mid}/polls`);
    const details = await Promise.all((polls || []).map((p) => ctx.api('GET', `/api/polls/${encodeURIComponent(p.id)}`).catch(() => null)));
    if (!body.isConnected) return;
    ctx.clearAlert(body);
    list.textContent = '';
    if (!polls || polls.length === 0) list.append(el('p', { class: 'muted empty', id: 'polls-empty', text: t('polls.empty') }));
    // Newest first.
    (polls || []).map((p, i) => pollCard(p, details[i])).reverse().forEach((c) => list.append(c));
    updated.textContent = t('att.updated', { time: clock() });
  };
  const tick = async () => {
    if (!body.isConnected || !ctx.token()) return;
    try {
      await refresh();
    } catch (e) {
      if (!body.isConnected || !ctx.token()) return;
      ctx.showAlert(body, e);
    }
    if (body.isConnected) setTimeout(tick, RECORD_REFRESH_MS);
  };
  await tick();
}
