// The minutes ("Biên bản") tab of a meeting's page for the secretariat: open
// the minutes as they now are (HTML, in a sandboxed frame), download the
// draft PDF, seal them ("Đóng dấu biên bản": a PAdES signature, kept as a
// version that never changes), and the list of sealed versions with their
// downloads; the seal's certificate for readers. REST (docs/api.md, "Sealed
// minutes"): GET /api/meetings/{id}/minutes, .../minutes.pdf,
// POST .../minutes/seal, GET .../minutes/versions, .../versions/{n},
// GET /api/minutes/seal-certificate. Strings in i18n.js (`minutes.*`).

import { apiBlob } from './api.js';
import { el, formatTime, saveBlob } from './documents.js';
import { t } from './i18n.js';

/**
 * Fills `body` with the tab. `ctx`: { api(method, path, body), token(),
 * showAlert(box, e), clearAlert(box), toast(text), confirmDialog(title, text,
 * ok), canSeal }.
 */
export async function minutesTab(body, meeting, ctx) {
  const mid = encodeURIComponent(meeting.id);
  const path = `/api/meetings/${mid}/minutes`;
  const card = el('section', { class: 'card minutes-box', id: 'minutes-box', 'aria-labelledby': 'minutes-heading' });
  body.append(card);
  card.append(
    el('h2', { id: 'minutes-heading', text: t('minutes.title') }),
    el('p', { class: 'muted', text: t('minutes.help') }),
  );

  const view = el('div', { class: 'minutes-view', id: 'minutes-view' });
  view.hidden = true;
  const open = el('button', { type: 'button', class: 'btn btn-secondary', id: 'minutes-open' }, t('minutes.open'));
  open.addEventListener('click', async () => {
    if (!view.hidden) {
      view.hidden = true;
      view.textContent = '';
      return;
    }
    try {
      const { blob } = await apiBlob(path, { token: ctx.token() });
      // No scripts, an origin of its own: shown, never run.
      const frame = el('iframe', { class: 'minutes-frame', id: 'minutes-frame', sandbox: '', title: t('minutes.title') });
      // Sized through the CSSOM (the page's policy allows no inline style).
      Object.assign(frame.style, { width: '100%', height: '70vh', border: '1px solid #ccc', background: '#fff', marginTop: '12px' });
      // This page's Content-Security-Policy (inherited by the frame) allows
      // style sheets from the server only: the minutes' rules, as an asset
      // (docfmt's, the same as the notice's).
      frame.srcdoc = (await blob.text()).replace(/<style>[\s\S]*?<\/style>/, '<link rel="stylesheet" href="/assets/document.css">');
      view.textContent = '';
      view.append(frame);
      view.hidden = false;
    } catch (e) {
      ctx.showAlert(card, e);
    }
  });
  const draft = el('button', { type: 'button', class: 'btn btn-secondary', id: 'minutes-draft' }, t('minutes.draft'));
  draft.addEventListener('click', async () => {
    try {
      const { blob, filename } = await apiBlob(`${path}.pdf`, { token: ctx.token() });
      saveBlob(blob, (filename || 'bien-ban.pdf').replace(/\.pdf$/, '-du-thao.pdf'));
    } catch (e) {
      ctx.showAlert(card, e);
    }
  });
  const actions = el('div', { class: 'form-actions' }, open, draft);
  const list = el('div', { class: 'minutes-versions', id: 'minutes-versions' });

  if (ctx.canSeal) {
    const seal = el('button', { type: 'button', class: 'btn btn-primary', id: 'minutes-seal' }, t('minutes.seal'));
    seal.addEventListener('click', async () => {
      const ok = await ctx.confirmDialog(t('minutes.seal'), t('minutes.sealConfirm', { title: meeting.title }), t('minutes.seal'));
      if (!ok) return;
      seal.disabled = true;
      try {
        ctx.clearAlert(card);
        const v = await ctx.api('POST', `${path}/seal`);
        ctx.toast(v.created ? t('minutes.sealed', { n: v.version }) : t('minutes.unchanged', { n: v.version }));
        await fillVersions(list, path, ctx, card);
      } catch (e) {
        ctx.showAlert(card, e);
      } finally {
        seal.disabled = false;
      }
    });
    actions.append(seal);
  }
  card.append(actions, view);

  const versions = el('section', { class: 'card minutes-versions-box', 'aria-labelledby': 'minutes-versions-heading' });
  versions.append(
    el('h2', { id: 'minutes-versions-heading', text: t('minutes.versions') }),
    list,
    el(
      'p',
      { class: 'muted' },
      t('minutes.certHelp'),
      ' ',
      el('a', { href: '/api/minutes/seal-certificate', id: 'minutes-cert', download: 'giaoban-con-dau.pem' }, t('minutes.cert')),
    ),
  );
  body.append(versions);
  await fillVersions(list, path, ctx, versions);
}

async function fillVersions(list, path, ctx, alertBox) {
  let rows;
  try {
    rows = await ctx.api('GET', `${path}/versions`);
  } catch (e) {
    ctx.showAlert(alertBox, e);
    return;
  }
  list.textContent = '';
  if (!Array.isArray(rows) || rows.length === 0) {
    list.append(el('p', { class: 'muted', id: 'minutes-none', text: t('minutes.none') }));
    return;
  }
  const tbody = el('tbody');
  // Newest first: the current version on top.
  for (const v of [...rows].reverse()) {
    const get = el('button', { type: 'button', class: 'btn btn-secondary btn-small', dataset: { version: String(v.version) } }, t('minutes.download'));
    get.addEventListener('click', async () => {
      try {
        const { blob, filename } = await apiBlob(`${path}/versions/${encodeURIComponent(v.version)}`, { token: ctx.token() });
        saveBlob(blob, filename || `bien-ban-ban-${v.version}.pdf`);
      } catch (e) {
        ctx.showAlert(alertBox, e);
      }
    });
    tbody.append(
      el(
        'tr',
        { dataset: { version: String(v.version) } },
        el('td', { text: t('minutes.versionN', { n: v.version }) }),
        el('td', { text: formatTime(v.sealed_at) }),
        el('td', { class: 'minutes-seal-subject', text: v.seal_subject }),
        el('td', {}, el('code', { title: v.sha256, text: `${String(v.sha256).slice(0, 12)}…` })),
        el('td', {}, get),
      ),
    );
  }
  list.append(
    el(
      'table',
      { class: 'data-table', id: 'minutes-versions-table' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ['minutes.colVersion', 'minutes.colSealedAt', 'minutes.colSeal', 'minutes.colHash', 'minutes.colFile'].map((k) => el('th', { scope: 'col', text: t(k) })),
        ),
      ),
      tbody,
    ),
  );
}
