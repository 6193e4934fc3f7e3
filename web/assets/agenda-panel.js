// The participants' view of a meeting's agenda (on the join page): the items
// in order, their documents with the signature badge and the verified
// format, and a download button (withdrawn documents stay listed, marked
// withdrawn, without it). Reads the API with the invitation token; `reload()` is called
// again when the server pushes `agenda_changed`. Each item shows its conclusion
// (`GET .../conclusions`, then `setConclusion()` on `conclusion_changed`).

import { apiRequest } from './api.js';
import { downloadDocument, el, fileIcon, formatSize, isWithdrawn, signatureBadge, signatureOf, withdrawnNote } from './documents.js';
import { errorText, hasText, t } from './i18n.js';

function listOf(v, key) {
  if (Array.isArray(v)) return v;
  if (v && Array.isArray(v[key])) return v[key];
  if (v && Array.isArray(v.items)) return v.items;
  return [];
}

function durationText(minutes) {
  const m = Math.max(0, Math.round(Number(minutes) || 0));
  const h = Math.floor(m / 60);
  if (h === 0) return t('duration.minutes', { m });
  if (m % 60 === 0) return t('duration.hours', { h });
  return t('duration.hoursMinutes', { h, m: m % 60 });
}

function latestVersion(doc) {
  const versions = Array.isArray(doc.versions) ? doc.versions : [];
  return versions.reduce((best, v) => (!best || (v.version || 0) > (best.version || 0) ? v : best), null);
}

function codeText(e) {
  const code = (e && e.code) || 'unknown';
  return hasText(`error.${code}`) ? t(`error.${code}`) : errorText(code);
}

/** The agenda panel, rendered into `root` (a section with a head and a body). */
export class AgendaPanel {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.root    the panel element (`.agenda-panel`)
   * @param {string} opts.token        the invitation token
   * @param {string} opts.meetingId
   */
  constructor({ root, token, meetingId }) {
    this.root = root;
    this.token = token;
    this.meetingId = meetingId;
    this.items = null;
    /** The item under discussion (`meeting_state.current_item_id`), marked in the list. */
    this.currentItemId = null;
    /** Item id -> its conclusion's text. */
    this.conclusions = new Map();
    /** Conclusions pushed while a reload was reading them (newer than what it reads). */
    this._pushedConclusions = new Map();
    this.error = null;
    this.loading = false;
    this.changed = false;
    this._again = false;
    this._noticeTimer = null;
    this.body = root.querySelector('.agenda-panel-body');
    this.notice = root.querySelector('.agenda-notice');
    const refresh = root.querySelector('.agenda-refresh');
    if (refresh) refresh.addEventListener('click', () => this.reload());
  }

  /** Loads the agenda and its documents again; `changed`: say it was updated. */
  async reload(changed) {
    if (changed) this.changed = true;
    if (this.loading) {
      this._again = true;
      return;
    }
    this.loading = true;
    if (!this.items) this.render();
    try {
      const items = listOf(
        await apiRequest('GET', `/api/meetings/${encodeURIComponent(this.meetingId)}/agenda`, { token: this.token }),
        'items',
      );
      items.sort((a, b) => (a.position ?? a.order ?? 0) - (b.position ?? b.order ?? 0));
      await Promise.all(
        items.map(async (item) => {
          if (Array.isArray(item.documents)) return;
          item.documents = listOf(
            await apiRequest('GET', `/api/agenda/${encodeURIComponent(item.id)}/documents`, { token: this.token }),
            'documents',
          );
        }),
      );
      this._pushedConclusions.clear();
      try {
        const list = listOf(
          await apiRequest('GET', `/api/meetings/${encodeURIComponent(this.meetingId)}/conclusions`, { token: this.token }),
          'conclusions',
        );
        this.conclusions = new Map(list.filter((c) => c && c.text).map((c) => [c.agenda_item_id, c.text]));
      } catch (_) {
        // The agenda shows without them (a server without conclusions).
      }
      for (const [id, text] of this._pushedConclusions) {
        if (text) this.conclusions.set(id, text);
        else this.conclusions.delete(id);
      }
      for (const item of items) item.conclusion = this.conclusions.get(item.id) || null;
      this.items = items;
      this.error = null;
    } catch (e) {
      this.error = e;
    } finally {
      this.loading = false;
    }
    this.render();
    if (this.changed && !this.error) {
      this.changed = false;
      this.notice.textContent = t('agenda.updated');
      this.notice.hidden = false;
      clearTimeout(this._noticeTimer);
      this._noticeTimer = setTimeout(() => {
        this.notice.hidden = true;
      }, 6000);
    }
    this.root.dispatchEvent(new CustomEvent('agenda_loaded', { detail: { items: this.items } }));
    if (this._again) {
      this._again = false;
      this.reload();
    }
  }

  render() {
    const body = this.body;
    body.textContent = '';
    if (this.error) {
      body.append(el('div', { class: 'alert alert-error', role: 'alert', dataset: { code: this.error.code || '' }, text: codeText(this.error) }));
    }
    if (!this.items) {
      if (!this.error) body.append(el('p', { class: 'muted', text: t('agenda.loading') }));
      return;
    }
    if (this.items.length === 0) {
      body.append(el('p', { class: 'muted', text: t('agenda.empty') }));
      return;
    }
    const total = this.items.reduce((s, i) => s + (Number(i.duration_minutes) || 0), 0);
    body.append(el('p', { class: 'muted small agenda-total' }, t('agenda.total', { n: this.items.length, duration: durationText(total) })));
    body.append(
      el(
        'ol',
        { class: 'agenda-list' },
        this.items.map((item, index) => this.renderItem(item, index)),
      ),
    );
  }

  /** An item's conclusion was set (`text`) or cleared (null): shown in place. */
  setConclusion(itemId, text) {
    if (!itemId) return;
    if (text) this.conclusions.set(itemId, text);
    else this.conclusions.delete(itemId);
    if (this.loading) this._pushedConclusions.set(itemId, text || null);
    const item = this.items && this.items.find((i) => i.id === itemId);
    if (item) item.conclusion = text || null;
    const li = [...this.body.querySelectorAll('.agenda-item')].find((x) => x.dataset.id === itemId);
    const old = li && li.querySelector('.agenda-conclusion');
    if (old) old.replaceWith(this.renderConclusion(itemId));
  }

  renderConclusion(itemId) {
    const text = this.conclusions.get(itemId) || '';
    return el('div', { class: 'agenda-conclusion', hidden: !text }, el('h4', { text: t('conclusion.title') }), el('p', { class: 'conclusion-text', text }));
  }

  /** Marks the item under discussion (null: none); the chair or secretary sets it. */
  setCurrentItem(id) {
    this.currentItemId = id || null;
    for (const li of this.body.querySelectorAll('.agenda-item')) this._markCurrent(li);
  }

  _markCurrent(li) {
    const current = !!this.currentItemId && li.dataset.id === this.currentItemId;
    li.classList.toggle('agenda-current', current);
    if (current) li.setAttribute('aria-current', 'step');
    else li.removeAttribute('aria-current');
    const badge = li.querySelector('.agenda-current-badge');
    if (badge) badge.hidden = !current;
    if (current && li.scrollIntoView && this.root.offsetParent !== null) li.scrollIntoView({ block: 'nearest' });
  }

  renderItem(item, index) {
    const meta = [item.presenter ? t('agenda.presenter', { name: item.presenter }) : null, item.duration_minutes ? durationText(item.duration_minutes) : null]
      .filter(Boolean)
      .join(' · ');
    const docs = Array.isArray(item.documents) ? item.documents : [];
    const li = el(
      'li',
      { class: 'agenda-item card', dataset: { id: item.id } },
      el(
        'div',
        { class: 'agenda-head' },
        el('span', { class: 'agenda-num', 'aria-hidden': 'true', text: String(index + 1) }),
        el(
          'div',
          { class: 'agenda-main' },
          el('span', { class: 'agenda-current-badge', hidden: true, text: t('agenda.current') }),
          el('h3', { class: 'agenda-title', text: item.title }),
          meta ? el('p', { class: 'muted small agenda-meta', text: meta }) : null,
        ),
      ),
      this.renderConclusion(item.id),
      el(
        'div',
        { class: 'docs' },
        docs.length
          ? el(
              'ul',
              { class: 'doc-list' },
              docs.map((doc) => this.renderDoc(doc, docs)),
            )
          : el('p', { class: 'muted small', text: t('agenda.noDocs') }),
      ),
    );
    this._markCurrent(li);
    return li;
  }

  renderDoc(doc, siblings) {
    const v = latestVersion(doc);
    const withdrawn = isWithdrawn(doc);
    const li = el('li', { class: withdrawn ? 'doc doc-withdrawn' : 'doc', dataset: { id: doc.id, withdrawn: withdrawn ? 'true' : 'false' } });
    const name = v ? v.filename || doc.title : doc.title;
    const act = (fn) => async () => {
      try {
        await fn(doc.id, v ? v.version : null, this.token, name);
      } catch (e) {
        const old = li.querySelector(':scope > .alert-error');
        if (old) old.remove();
        li.prepend(el('div', { class: 'alert alert-error', role: 'alert', dataset: { code: e.code || '' }, text: codeText(e) }));
      }
    };
    li.append(
      el(
        'div',
        { class: 'doc-head' },
        fileIcon(v),
        el(
          'div',
          { class: 'doc-main' },
          el('h4', { class: 'doc-title', text: doc.title }),
          v ? el('p', { class: 'muted small', text: `${v.filename} · ${formatSize(v.size)} · ${t('doc.version', { n: v.version })}` }) : null,
          withdrawnNote(doc, siblings),
        ),
        withdrawn
          ? null
          : el(
              'div',
              { class: 'doc-actions' },
              el('button', { type: 'button', class: 'btn btn-secondary btn-small doc-download', 'aria-label': t('doc.downloadNamed', { name, version: v ? v.version : 1 }), onclick: act(downloadDocument) }, t('doc.download')),
              // The meeting page's viewer (presentation.js): view, present.
              this.docActions ? this.docActions(doc, v) : null,
            ),
      ),
    );
    if (v && !withdrawn) li.append(signatureBadge(signatureOf(v)));
    return li;
  }

  /** What the panel shows, for tests: [{title, conclusion, documents: [{title, signature}]}]. */
  summary() {
    return [...this.body.querySelectorAll('.agenda-item')].map((li) => ({
      id: li.dataset.id,
      current: li.classList.contains('agenda-current'),
      title: li.querySelector('.agenda-title').textContent,
      conclusion: (li.querySelector('.agenda-conclusion:not([hidden]) .conclusion-text') || {}).textContent || null,
      documents: [...li.querySelectorAll('.doc')].map((d) => ({
        id: d.dataset.id,
        title: d.querySelector('.doc-title').textContent,
        signature: (d.querySelector('.sig-badge') || {}).textContent || null,
        status: (d.querySelector('.sig') || { dataset: {} }).dataset.status || null,
        type: (d.querySelector('.doc-icon') || { dataset: {} }).dataset.type || null,
        withdrawn: d.dataset.withdrawn === 'true',
      })),
    }));
  }
}
