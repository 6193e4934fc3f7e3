// Saved groups of units and printed links, for the secretariat (/admin):
//
// - unitGroupsCard: on "Điểm cầu", the saved groups ("khối kinh tế"):
//   create with a name and a choice of units, rename or change, delete.
// - savedGroupInvite: on a meeting's invitations tab, invite a saved group
//   in one step.
// - printLinksView (#/meetings/ID/print): one card per invitation with its
//   unit, a QR code of its link (SVG drawn by the server) and its short code
//   ("mã tham dự") to type on the join page; print CSS puts six cards on an
//   A4 page (print-links.css).
//
// `ctx` is what admin.js lends: api, toast, showAlert, clearAlert, confirm,
// route, go, canPrepare.

import { el, formatTime } from './documents.js';
import { t } from './i18n.js';

function listOf(v, key) {
  if (Array.isArray(v)) return v;
  if (v && Array.isArray(v[key])) return v[key];
  return [];
}

/** The form that creates (no `group`) or changes a saved group. */
function groupForm(ctx, points, group) {
  const editing = !!group;
  const chosen = new Set(group ? group.bridge_point_ids : []);
  const name = el('input', { name: 'name', required: true, maxlength: 500, value: group ? group.name : '', id: editing ? null : 'unit-group-name' });
  const filter = el('input', { type: 'search', class: 'unit-group-filter', placeholder: t('groups.filter'), 'aria-label': t('groups.filter') });
  const count = el('span', { class: 'muted unit-group-count', role: 'status' });
  const showCount = () => {
    count.textContent = t('groups.chosen', { n: chosen.size });
  };
  const sorted = [...points].sort((a, b) => String(a.name).localeCompare(String(b.name), 'vi'));
  const boxes = sorted.map((b) => {
    const box = el('input', { type: 'checkbox', value: b.id, checked: chosen.has(b.id) });
    box.addEventListener('change', () => {
      if (box.checked) chosen.add(b.id);
      else chosen.delete(b.id);
      showCount();
    });
    return el(
      'label',
      { class: 'check unit-group-unit', dataset: { name: String(b.name).toLowerCase(), level: b.level, id: b.id } },
      box,
      ` ${b.name} `,
      el('span', { class: `level-badge level-${b.level}`, text: t(`level.${b.level}`) }),
    );
  });
  filter.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    for (const l of boxes) l.hidden = !!q && !l.dataset.name.includes(q);
  });
  showCount();
  const form = el(
    'form',
    { class: 'card form-grid prepare-only unit-group-form', id: editing ? null : 'unit-group-form', novalidate: true },
    el('h3', { class: 'form-title', text: t(editing ? 'groups.edit' : 'groups.add') }),
    el('label', { class: 'field' }, el('span', { text: t('groups.name') }), name),
    el('fieldset', { class: 'unit-group-units' }, el('legend', { text: t('groups.units') }), filter, count, el('div', { class: 'unit-group-list' }, boxes)),
    el(
      'div',
      { class: 'form-actions' },
      editing ? el('button', { type: 'button', class: 'btn btn-secondary', onclick: () => ctx.route() }, t('action.cancel')) : null,
      el('button', { type: 'submit', class: 'btn btn-primary', id: editing ? null : 'unit-group-save' }, t(editing ? 'action.save' : 'groups.addButton')),
    ),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    ctx.clearAlert(form);
    if (!name.value.trim()) {
      ctx.showAlert(form, t('form.nameRequired'));
      return;
    }
    const payload = { name: name.value.trim(), bridge_point_ids: [...chosen] };
    try {
      if (editing) await ctx.api('PATCH', `/api/unit-groups/${encodeURIComponent(group.id)}`, payload);
      else await ctx.api('POST', '/api/unit-groups', payload);
      ctx.toast(t(editing ? 'groups.saved' : 'groups.added', { name: payload.name }));
      ctx.route();
    } catch (e) {
      ctx.showAlert(form, e);
    }
  });
  return form;
}

/** "Nhóm đơn vị" on the bridge points page: the saved groups and a form. */
export async function unitGroupsCard(ctx, points) {
  const groups = listOf(await ctx.api('GET', '/api/unit-groups'), 'groups');
  const box = el('section', { class: 'unit-groups', id: 'unit-groups', 'aria-labelledby': 'unit-groups-heading' });
  const formBox = el('div', { class: 'form-box' });
  const nameOf = (id) => (points.find((b) => b.id === id) || {}).name || id;
  box.append(el('h2', { id: 'unit-groups-heading', text: t('groups.title') }), el('p', { class: 'muted', text: t('groups.help') }));
  if (!groups.length) box.append(el('p', { class: 'muted empty', text: t('groups.empty') }));
  else {
    box.append(
      el(
        'div',
        { class: 'table-box' },
        el(
          'table',
          { class: 'data-table', id: 'unit-groups-table' },
          el('thead', {}, el('tr', {}, ['groups.name', 'groups.units', 'table.actions'].map((k) => el('th', { scope: 'col', class: k === 'table.actions' ? 'prepare-only' : null, text: t(k) })))),
          el(
            'tbody',
            {},
            groups.map((g) =>
              el(
                'tr',
                { dataset: { id: g.id } },
                el('td', { class: 'unit-group-name', text: g.name }),
                el('td', { title: g.bridge_point_ids.map(nameOf).join(', ') }, t('groups.count', { n: g.bridge_point_ids.length })),
                el(
                  'td',
                  { class: 'row-actions prepare-only' },
                  el('button', {
                    type: 'button',
                    class: 'btn btn-secondary btn-small',
                    'aria-label': t('groups.editNamed', { name: g.name }),
                    onclick: () => {
                      formBox.textContent = '';
                      formBox.append(groupForm(ctx, points, g));
                      formBox.querySelector('input').focus();
                    },
                  }, t('action.edit')),
                  el('button', {
                    type: 'button',
                    class: 'btn btn-danger-outline btn-small',
                    'aria-label': t('groups.deleteNamed', { name: g.name }),
                    onclick: async () => {
                      const ok = await ctx.confirm(t('groups.deleteTitle'), t('groups.deleteConfirm', { name: g.name }), t('groups.delete'), true);
                      if (!ok) return;
                      try {
                        await ctx.api('DELETE', `/api/unit-groups/${encodeURIComponent(g.id)}`);
                        ctx.toast(t('groups.deleted', { name: g.name }));
                        ctx.route();
                      } catch (e) {
                        ctx.showAlert(box, e);
                      }
                    },
                  }, t('groups.delete')),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }
  formBox.append(groupForm(ctx, points, null));
  box.append(formBox);
  return box;
}

/** A saved group to invite in one step, beside the invitations by level. */
export function savedGroupInvite(ctx, meeting, groups, onMade) {
  if (!groups.length) return null;
  const sel = el(
    'select',
    { id: 'invite-saved-group-select', 'aria-label': t('groups.inviteChoose') },
    groups.map((g) => el('option', { value: g.id, text: t('groups.option', { name: g.name, n: g.bridge_point_ids.length }) })),
  );
  const go = el('button', { type: 'button', class: 'btn btn-secondary', id: 'invite-saved-group' }, t('groups.invite'));
  go.addEventListener('click', async () => {
    go.disabled = true;
    try {
      const made = listOf(await ctx.api('POST', `/api/meetings/${encodeURIComponent(meeting.id)}/invitations/unit-group`, { group_id: sel.value }), 'invitations');
      onMade(made);
      ctx.toast(made.length ? t('invite.group.done', { n: made.length }) : t('invite.group.none'));
      ctx.route();
    } catch (e) {
      ctx.showAlert(go.closest('section') || document.body, e);
    } finally {
      go.disabled = false;
    }
  });
  return el('span', { class: 'invite-saved-group' }, sel, go);
}

/** The printable page of a meeting's links: a card per invitation. */
export async function printLinksView(view, meetingId, ctx) {
  const data = await ctx.api('GET', `/api/meetings/${encodeURIComponent(meetingId)}/invitations/print`);
  const m = data.meeting || {};
  view.textContent = '';
  document.body.classList.add('print-links-page');
  const when = [m.starts_at ? formatTime(m.starts_at) : null, m.location || null].filter(Boolean).join(' · ');
  const toolbar = el(
    'div',
    { class: 'print-toolbar form-actions' },
    el('a', { class: 'btn btn-secondary', href: `#/meetings/${encodeURIComponent(meetingId)}/invitations`, id: 'print-back' }, t('print.back')),
    el('button', { type: 'button', class: 'btn btn-primary', id: 'print-now', onclick: () => window.print() }, t('print.print')),
  );
  view.append(
    toolbar,
    el('h1', { class: 'print-title', text: t('print.title', { title: m.title || '' }) }),
    el('p', { class: 'print-when', text: when }),
    el('p', { class: 'muted print-help', text: t('print.help', { url: data.join_url }) }),
  );
  if (data.url_warning) view.append(el('p', { class: 'alert alert-warn print-warning', role: 'alert', text: t(`invite.warn.${data.url_warning}`) }));
  const links = Array.isArray(data.links) ? data.links : [];
  if (!links.length) {
    view.append(el('p', { class: 'muted empty', text: t('print.empty') }));
    return;
  }
  const cards = links.map((l) => {
    const qr = l.qr_svg
      ? el('img', {
          class: 'print-qr',
          alt: t('print.qrAlt', { name: l.name }),
          src: `data:image/svg+xml;charset=utf-8,${encodeURIComponent(l.qr_svg)}`,
        })
      : null;
    const unit = [l.level ? t(`level.${l.level}`) : null, l.unit_code ? t('print.unitCode', { code: l.unit_code }) : null].filter(Boolean).join(' · ');
    return el(
      'article',
      { class: 'print-card', dataset: { invitation: l.invitation_id, url: l.url } },
      el('h2', { class: 'print-name', text: l.name }),
      unit ? el('p', { class: 'print-unit', text: unit }) : null,
      el(
        'div',
        { class: 'print-body' },
        qr,
        el(
          'div',
          { class: 'print-text' },
          el('p', { class: 'print-code-label', text: t('print.codeLabel') }),
          el('p', { class: 'print-code', text: l.short_code }),
          el('p', { class: 'print-join', text: t('print.joinAt', { url: data.join_url }) }),
          el('p', { class: 'print-expires', text: t('print.expires', { when: formatTime(l.expires_at) }) }),
          l.operator_phone ? el('p', { class: 'print-phone', text: t('print.phone', { phone: l.operator_phone }) }) : null,
        ),
      ),
      data.contact ? el('p', { class: 'print-contact', text: t('join.contact', { contact: data.contact }) }) : null,
    );
  });
  view.append(el('div', { class: 'print-cards', id: 'print-cards' }, cards));
}

/** Leaving the printable page: the admin layout comes back. */
export function leavePrintView() {
  document.body.classList.remove('print-links-page');
}
