// The document viewer of the meeting page and the synchronized presentation
// (docs/protocol.md, "Presenting documents").
//
// A PDF is fetched as data with the participant's invitation token
// (`GET /api/documents/{id}/content?version=N`) and drawn into a canvas by
// pdf.js (web/vendor/pdfjs, served by the binary: nothing from elsewhere).
// Nothing of the document runs in this origin: pdf.js parses it in its
// worker (same origin, allowed by the CSP's script-src 'self'), scripting,
// XFA, eval and WebAssembly are off, and only pixels reach the page.
//
// The presenter's page turns and zooms go to the server (`present_page`);
// everyone's viewer follows the `presentation` event, unless its user
// browses freely ("xem tự do"); one click ("Về trang người trình bày")
// follows again. Personal notes and comments on a page are kept through
// the REST API (`/api/documents/{id}/notes`, docs/api.md); the author
// changes or deletes its own from the list (`PATCH`/`DELETE /api/notes/{id}`).

import { apiBlob, apiRequest } from './api.js';
import { contentUrl, el, formatTime, saveBlob } from './documents.js';
import { errorText, hasText, t } from './i18n.js';

const PDFJS = '/vendor/pdfjs/pdf.min.mjs';
const WORKER = '/vendor/pdfjs/pdf.worker.min.mjs';
const DECODERS = '/vendor/pdfjs/wasm/';
const ZOOMS = [50, 75, 100, 125, 150, 200, 300];

let pdfjsPromise = null;

/** pdf.js, loaded once from the binary. */
function pdfjs() {
  if (!pdfjsPromise) {
    pdfjsPromise = import(PDFJS).then((lib) => {
      lib.GlobalWorkerOptions.workerSrc = WORKER;
      return lib;
    });
  }
  return pdfjsPromise;
}

function codeText(e) {
  const code = (e && e.code) || 'internal';
  return hasText(`error.${code}`) ? t(`error.${code}`) : errorText(code);
}

function now() {
  return performance.timeOrigin + performance.now();
}

/** The viewer, its presentation state and the notes of the document shown. */
export class Presenter {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.home   where the viewer goes (the meeting's stage)
   * @param {string} opts.token       the invitation token
   * @param {string} opts.role        the invitation's role
   * @param {string} opts.meetingId
   */
  constructor({ home, token, role, meetingId }) {
    this.token = token;
    this.meetingId = meetingId;
    this.role = role;
    this.client = null;
    this.selfId = null;
    /** The meeting's presentation (`presentation` event), or null. */
    this.presentation = null;
    this.floorMayPresent = false;
    this.floorHolder = null;
    this.seq = -1;
    /** Whether this viewer follows the presenter. */
    this.following = true;
    /** The document shown: {id, version, title, pdf, pages}. */
    this.doc = null;
    this.page = 1;
    this.zoom = 100;
    this.rendered = { documentId: null, page: 0, zoom: 0, at: 0 };
    /** Page -> when it was drawn (for the tests' delay). */
    this.renderLog = [];
    this.error = null;
    this.notes = [];
    /** One's own note being edited: {id, draft}, or null. */
    this.editing = null;
    /** The id of one's own note whose deletion awaits confirmation, or null. */
    this.deleting = null;
    this._renderTask = null;
    this._loadSeq = 0;
    this._build(home);
  }

  _build(home) {
    const btn = (cls, key, onclick, extra) =>
      el('button', { type: 'button', class: `btn btn-small ${cls}`, 'data-i18n': key, onclick, ...(extra || {}) }, t(key));
    this.titleEl = el('h2', { class: 'viewer-title', id: 'viewer-title' });
    this.statusEl = el('p', { class: 'viewer-status small', role: 'status', 'aria-live': 'polite' });
    this.pageEl = el('span', { class: 'viewer-page', 'aria-live': 'polite' });
    this.prevBtn = btn('viewer-prev', 'viewer.prev', () => this.turn(-1), { 'aria-label': t('viewer.prev') });
    this.nextBtn = btn('viewer-next', 'viewer.next', () => this.turn(1), { 'aria-label': t('viewer.next') });
    this.zoomOut = btn('viewer-zoom-out', 'viewer.zoomOut', () => this.zoomBy(-1));
    this.zoomIn = btn('viewer-zoom-in', 'viewer.zoomIn', () => this.zoomBy(1));
    this.backBtn = btn('btn-primary viewer-back', 'viewer.back', () => this.follow(), { hidden: true });
    this.stopBtn = btn('btn-secondary viewer-stop', 'viewer.stop', () => this.stop(), { hidden: true });
    this.closeBtn = btn('btn-secondary viewer-close', 'viewer.close', () => this.close(), { hidden: true });
    this.canvas = el('canvas', { class: 'viewer-canvas', 'aria-labelledby': 'viewer-title' });
    this.errorEl = el('div', { class: 'alert alert-error', role: 'alert', hidden: true });
    this.noteText = el('textarea', { class: 'note-text', rows: '2', maxlength: '4000', 'aria-label': t('notes.placeholder'), placeholder: t('notes.placeholder') });
    this.noteKind = el('select', { class: 'note-kind', 'aria-label': t('notes.kind') }, el('option', { value: 'note', text: t('notes.kind.note') }), el('option', { value: 'comment', text: t('notes.kind.comment') }));
    this.noteKind.hidden = !['chair', 'member'].includes(this.role);
    this.noteSave = btn('btn-secondary note-save', 'notes.save', () => this.saveNote());
    this.noteExport = btn('btn-secondary note-export', 'notes.export', () => this.exportNotes());
    this.noteList = el('ul', { class: 'note-list' });
    this.notesEl = el(
      'details',
      { class: 'viewer-notes' },
      el('summary', { text: t('notes.title') }),
      el('div', { class: 'note-form' }, this.noteText, this.noteKind, this.noteSave, this.noteExport),
      this.noteList,
    );
    this.root = el(
      'section',
      { id: 'doc-viewer', class: 'card doc-viewer', 'aria-labelledby': 'viewer-title', hidden: true },
      el('div', { class: 'viewer-head' }, this.titleEl, this.statusEl),
      el(
        'div',
        { class: 'viewer-bar', role: 'toolbar' },
        this.prevBtn,
        this.pageEl,
        this.nextBtn,
        this.zoomOut,
        this.zoomIn,
        this.backBtn,
        this.stopBtn,
        this.closeBtn,
      ),
      this.errorEl,
      el('div', { class: 'viewer-scroll' }, this.canvas),
      this.notesEl,
    );
    home.prepend(this.root);
  }

  /** The live client: events in, requests out. */
  attach(client) {
    this.client = client;
    client.addEventListener('presentation', (ev) => this.onPresentation(ev.detail));
    client.addEventListener('joined', (ev) => {
      this.selfId = ev.detail && ev.detail.self ? ev.detail.self.id : client.self ? client.self.id : null;
      if (ev.detail && ev.detail.meetingState) this._meetingState(ev.detail.meetingState);
    });
    client.addEventListener('meeting_state', (ev) => this._meetingState(ev.detail.state));
    // Events that came before this module loaded.
    if (client.meetingState) this._meetingState(client.meetingState);
    if (client.presentation !== undefined) {
      this.onPresentation({ presentation: client.presentation, floorMayPresent: client.floorMayPresent });
    }
  }

  _meetingState(st) {
    const f = st && st.floor;
    this.floorHolder = f ? f.participant_id : null;
    this.currentItem = st ? st.current_item_id || null : null;
    this.onRightsChanged();
  }

  _selfId() {
    return this.selfId || (this.client && this.client.self ? this.client.self.id : null);
  }

  /** Whether this participant may present now (the server checks it too). */
  mayPresent() {
    if (this.role === 'chair' || this.role === 'secretary') return true;
    if (this.role === 'observer') return false;
    return this.floorMayPresent && !!this.floorHolder && this.floorHolder === this._selfId();
  }

  isPresenter() {
    return !!this.presentation && this.presentation.presenter_id === this._selfId();
  }

  /** Whether page turns here go to everyone. */
  _drives() {
    return this.isPresenter() || (!!this.presentation && (this.role === 'chair' || this.role === 'secretary') && this.following);
  }

  /** Redraws the agenda's buttons when the right to present or the current item changed. */
  onRightsChanged() {
    const key = `${this.mayPresent()}|${this.currentItem || ''}`;
    if (key === this._rightsKey) return;
    this._rightsKey = key;
    if (this.onRights) this.onRights(this.mayPresent());
  }

  onPresentation({ presentation, floorMayPresent }) {
    const seq = presentation ? Number(presentation.seq) || 0 : Infinity;
    this.floorMayPresent = !!floorMayPresent;
    this.onRightsChanged();
    if (presentation && seq < this.seq) return;
    this.seq = presentation ? seq : -1;
    const had = this.presentation;
    this.presentation = presentation;
    if (!presentation) {
      // The presentation ended: a viewer that followed it closes.
      if (had && this.following) this.close();
      this.renderBar();
      return;
    }
    if (!had || had.document_id !== presentation.document_id || had.version !== presentation.version) this.following = true;
    if (this.following) this.showPresenter();
    this.renderBar();
  }

  /** Follows the presenter again ("Về trang người trình bày"). */
  follow() {
    this.following = true;
    this.showPresenter();
    this.renderBar();
  }

  showPresenter() {
    const p = this.presentation;
    if (!p) return;
    this.open({ id: p.document_id, version: p.version, title: p.title }, p.page, p.zoom_percent);
  }

  /** Opens a document here (only for this participant), at `page`. */
  async open(doc, page, zoom) {
    this.root.hidden = false;
    if (zoom) this.zoom = zoom;
    if (this.doc && this.doc.id === doc.id && this.doc.version === doc.version) {
      this.page = this._clamp(page || this.page);
      this.renderBar();
      if (this.doc.pdf) await this.draw();
      return;
    }
    const mine = ++this._loadSeq;
    if (this.doc && this.doc.task) this.doc.task.destroy();
    this.doc = { id: doc.id, version: doc.version, title: doc.title || '', pdf: null, pages: 0 };
    this.page = page || 1;
    this.error = null;
    this.titleEl.textContent = this.doc.title;
    this.renderBar();
    this.loadNotes();
    try {
      this.stage = 'script';
      const lib = await pdfjs();
      this.stage = 'fetch';
      const { blob } = await apiBlob(contentUrl(doc.id, doc.version), { token: this.token });
      const data = new Uint8Array(await blob.arrayBuffer());
      this.stage = 'parse';
      const task = lib.getDocument({
        data,
        isEvalSupported: false,
        enableXfa: false,
        useWasm: false,
        wasmUrl: new URL(DECODERS, window.location.href).href,
        disableAutoFetch: true,
      });
      const pdf = await task.promise;
      if (mine !== this._loadSeq) {
        task.destroy();
        return;
      }
      this.doc.task = task;
      this.doc.pdf = pdf;
      this.doc.pages = pdf.numPages;
      this.page = this._clamp(this.page);
      this.stage = 'draw';
      this.renderBar();
      await this.draw();
      this.stage = 'ready';
    } catch (e) {
      if (mine !== this._loadSeq) return;
      this.error = e && e.code ? e : { code: 'document_unreadable' };
      this.renderBar();
    }
  }

  _clamp(page) {
    const n = this.doc && this.doc.pages ? this.doc.pages : Infinity;
    return Math.max(1, Math.min(n, Math.round(Number(page) || 1)));
  }

  /** Draws the current page into the canvas, the whole page fitted at 100 %. */
  async draw() {
    const d = this.doc;
    if (!d || !d.pdf) return;
    const want = { page: this.page, zoom: this.zoom, id: d.id };
    if (this._renderTask) {
      this._renderTask.cancel();
      this._renderTask = null;
    }
    try {
      const page = await d.pdf.getPage(want.page);
      if (this.doc !== d || this.page !== want.page || this.zoom !== want.zoom) return;
      const base = page.getViewport({ scale: 1 });
      const box = this.canvas.parentElement;
      // 100 %: the whole page in the box (everyone sees the same page).
      const width = Math.max(200, (box && box.clientWidth) || 800) - 4;
      const height = Math.max(200, (box && box.clientHeight) || 600) - 4;
      const fit = Math.min(width / base.width, height / base.height);
      const scale = fit * (want.zoom / 100);
      const ratio = window.devicePixelRatio || 1;
      const vp = page.getViewport({ scale: scale * ratio });
      const canvas = this.canvas;
      canvas.width = Math.floor(vp.width);
      canvas.height = Math.floor(vp.height);
      canvas.style.width = `${Math.floor(vp.width / ratio)}px`;
      canvas.style.height = `${Math.floor(vp.height / ratio)}px`;
      const task = page.render({ canvas, canvasContext: canvas.getContext('2d'), viewport: vp });
      this._renderTask = task;
      await task.promise;
      if (this._renderTask === task) this._renderTask = null;
      const at = now();
      this.rendered = { documentId: d.id, page: want.page, zoom: want.zoom, at };
      this.renderLog.push({ page: want.page, zoom: want.zoom, at });
      if (this.renderLog.length > 200) this.renderLog.shift();
      this.canvas.dataset.page = String(want.page);
      this.renderNotes();
    } catch (e) {
      if (e && e.name === 'RenderingCancelledException') return;
      this.error = { code: 'document_unreadable' };
      this.renderBar();
    }
  }

  /** Next (+1) or previous (-1) page: for everyone when presenting, else here only. */
  turn(delta) {
    if (!this.doc) return;
    const page = this._clamp(this.page + delta);
    if (page === this.page) return;
    this.goTo(page, this.zoom);
  }

  zoomBy(step) {
    const i = ZOOMS.findIndex((z) => z >= this.zoom);
    const at = i < 0 ? ZOOMS.length - 1 : i;
    const zoom = ZOOMS[Math.max(0, Math.min(ZOOMS.length - 1, at + step))];
    if (zoom === this.zoom) return;
    this.goTo(this.page, zoom);
  }

  goTo(page, zoom) {
    const drives = this._drives() && this.presentation && this.doc && this.doc.id === this.presentation.document_id;
    this.page = page;
    this.zoom = zoom;
    if (drives) {
      this.client.presentPage(page, zoom).catch((e) => this.showError(e));
    } else if (this.presentation) {
      // Browsing freely: the presenter's page stays one click away.
      this.following = false;
    }
    this.renderBar();
    this.draw();
  }

  /** Presents a document of the current agenda item to everyone. */
  async present(doc) {
    if (!this.client) return;
    try {
      this.following = true;
      await this.client.presentDocument(doc.id, 1, 100);
    } catch (e) {
      this.showError(e);
    }
  }

  async stop() {
    if (!this.client) return;
    try {
      await this.client.stopPresenting();
    } catch (e) {
      this.showError(e);
    }
  }

  close() {
    this._loadSeq++;
    // The loading task owns the document and its worker's copy.
    if (this.doc && this.doc.task) this.doc.task.destroy();
    this.doc = null;
    this.root.hidden = true;
    this.rendered = { documentId: null, page: 0, zoom: 0, at: 0 };
    if (this.presentation) this.following = false;
    this.renderBar();
  }

  showError(e) {
    this.error = e;
    this.renderBar();
  }

  renderBar() {
    const d = this.doc;
    const p = this.presentation;
    const onPresented = !!(d && p && d.id === p.document_id && d.version === p.version);
    this.pageEl.textContent = d ? t('viewer.page', { page: this.page, pages: d.pages || '…' }) : '';
    this.prevBtn.disabled = !d || this.page <= 1;
    this.nextBtn.disabled = !d || !d.pages || this.page >= d.pages;
    let status = '';
    if (p && this.following && onPresented) status = t('viewer.following', { name: p.presenter_name });
    else if (p) status = t('viewer.browsing', { name: p.presenter_name, page: p.page });
    else if (d) status = t('viewer.private');
    this.statusEl.textContent = status;
    this.root.dataset.following = String(!!(p && this.following && onPresented));
    // Back to the presenter: while browsing away from its page or document.
    const away = !!p && (!this.following || !onPresented || this.page !== p.page);
    this.backBtn.hidden = !away || this.isPresenter();
    this.stopBtn.hidden = !p || !(this.isPresenter() || this.role === 'chair' || this.role === 'secretary');
    this.closeBtn.hidden = !d || (!!p && this.following && onPresented);
    if (this.error) {
      this.errorEl.hidden = false;
      this.errorEl.dataset.code = this.error.code || '';
      this.errorEl.textContent = codeText(this.error);
    } else {
      this.errorEl.hidden = true;
    }
    if (!d && p && !this.root.hidden) this.root.hidden = true;
  }

  // ---- notes ----------------------------------------------------------------

  async loadNotes() {
    const d = this.doc;
    if (!d) return;
    try {
      const r = await apiRequest('GET', `/api/documents/${encodeURIComponent(d.id)}/notes`, { token: this.token });
      if (this.doc !== d) return;
      this.notes = Array.isArray(r && r.notes) ? r.notes : [];
    } catch (_) {
      this.notes = [];
    }
    this.renderNotes();
  }

  async saveNote() {
    const d = this.doc;
    const text = this.noteText.value.trim();
    if (!d || !text) return;
    const kind = this.noteKind.hidden ? 'note' : this.noteKind.value;
    try {
      await apiRequest('POST', `/api/documents/${encodeURIComponent(d.id)}/notes`, {
        token: this.token,
        body: { page: this.page, version: d.version, kind, text },
      });
      this.noteText.value = '';
      await this.loadNotes();
    } catch (e) {
      this.showError(e);
    }
  }

  async exportNotes() {
    if (!this.meetingId) return;
    try {
      const { blob } = await apiBlob(`/api/meetings/${encodeURIComponent(this.meetingId)}/notes.csv`, { token: this.token });
      saveBlob(blob, 'ghi-chu.csv');
    } catch (e) {
      this.showError(e);
    }
  }

  renderNotes() {
    this.noteList.textContent = '';
    const here = this.notes.filter((n) => n.page === this.page);
    for (const n of here) {
      const who = n.mine ? t('notes.mine') : n.author_name || '';
      const kind = t(`notes.kind.${n.kind === 'comment' ? 'comment' : 'note'}`);
      const li = el(
        'li',
        { class: `note note-${n.kind}`, dataset: { id: n.id, stale: n.stale ? 'true' : 'false' } },
        el('span', { class: 'note-meta small muted', text: `${kind} · ${who} · ${formatTime(n.updated_at)}` }),
        n.stale ? el('span', { class: 'note-stale small', text: t('notes.stale', { version: n.version }) }) : null,
      );
      if (n.mine && this.editing && this.editing.id === n.id) li.append(this._editForm(n));
      else li.append(el('p', { class: 'note-body', text: n.text }));
      if (n.mine && !(this.editing && this.editing.id === n.id)) li.append(this._noteActions(n));
      this.noteList.append(li);
    }
    const summary = this.notesEl.querySelector('summary');
    if (summary) summary.textContent = t('notes.titleCount', { n: here.length });
  }

  /** "Sửa" and "Xóa" under one's own note; "Xóa" asks once more, in place. */
  _noteActions(n) {
    const small = (cls, key, onclick, label) =>
      el('button', { type: 'button', class: `btn btn-small ${cls}`, 'aria-label': label, onclick }, t(key));
    const box = el('div', { class: 'note-actions' });
    if (this.deleting === n.id) {
      box.append(
        el('span', { class: 'small', role: 'status', text: t('notes.deleteAsk') }),
        small('note-delete-confirm', 'notes.deleteConfirm', () => this.deleteNote(n), t('notes.deleteConfirm')),
        small('btn-secondary note-delete-cancel', 'notes.cancel', () => {
          this.deleting = null;
          this.renderNotes();
        }, t('notes.cancel')),
      );
    } else {
      box.append(
        small('btn-secondary note-edit', 'notes.edit', () => {
          this.deleting = null;
          this.editing = { id: n.id, draft: n.text };
          this.renderNotes();
          const area = this.noteList.querySelector('.note-edit-text');
          if (area) area.focus();
        }, t('notes.editNamed', { page: n.page })),
        small('btn-secondary note-delete', 'notes.delete', () => {
          this.deleting = n.id;
          this.renderNotes();
        }, t('notes.deleteNamed', { page: n.page })),
      );
    }
    return box;
  }

  /** The edit box of one's own note (its draft survives a redraw on a page turn). */
  _editForm(n) {
    const area = el('textarea', { class: 'note-edit-text', rows: '3', maxlength: '4000', 'aria-label': t('notes.editLabel') });
    area.value = this.editing.draft;
    area.addEventListener('input', () => {
      if (this.editing && this.editing.id === n.id) this.editing.draft = area.value;
    });
    const save = el('button', { type: 'button', class: 'btn btn-primary btn-small note-edit-save', onclick: () => this.updateNote(n, area.value) }, t('notes.saveEdit'));
    const cancel = el('button', {
      type: 'button',
      class: 'btn btn-secondary btn-small note-edit-cancel',
      onclick: () => {
        this.editing = null;
        this.renderNotes();
      },
    }, t('notes.cancel'));
    return el('div', { class: 'note-edit' }, area, el('div', { class: 'note-actions' }, save, cancel));
  }

  /** `PATCH /api/notes/{id}`: one's own note gets a new text. */
  async updateNote(n, value) {
    const text = String(value || '').trim();
    if (!text) return;
    try {
      const r = await apiRequest('PATCH', `/api/notes/${encodeURIComponent(n.id)}`, { token: this.token, body: { text } });
      this.notes = this.notes.map((x) => (x.id === n.id ? { ...x, ...(r || { text }) } : x));
      if (this.editing && this.editing.id === n.id) this.editing = null;
      this.renderNotes();
    } catch (e) {
      this.showError(e);
    }
  }

  /** `DELETE /api/notes/{id}`: one's own note is gone. */
  async deleteNote(n) {
    try {
      await apiRequest('DELETE', `/api/notes/${encodeURIComponent(n.id)}`, { token: this.token });
      this.notes = this.notes.filter((x) => x.id !== n.id);
    } catch (e) {
      // Already gone (404, e.g. deleted in another tab): gone here too.
      if (e && e.status === 404) this.notes = this.notes.filter((x) => x.id !== n.id);
      else this.showError(e);
    }
    if (this.deleting === n.id) this.deleting = null;
    this.renderNotes();
  }

  /** What the viewer shows, for tests. */
  summary() {
    const p = this.presentation;
    return {
      open: !this.root.hidden && !!this.doc,
      documentId: this.doc ? this.doc.id : null,
      version: this.doc ? this.doc.version : null,
      pages: this.doc ? this.doc.pages : 0,
      // Where opening the document stands (script, fetch, parse, draw, ready).
      stage: this.stage || null,
      page: this.page,
      zoom: this.zoom,
      following: !!p && this.following,
      presenterPage: p ? p.page : null,
      presenting: p ? p.document_id : null,
      rendered: this.rendered,
      renderLog: this.renderLog.slice(-50),
      backVisible: !this.backBtn.hidden,
      error: this.error ? this.error.code || 'error' : null,
      canvas: { width: this.canvas.width, height: this.canvas.height },
      notes: this.notes.map((n) => ({ id: n.id, page: n.page, kind: n.kind, text: n.text, mine: !!n.mine, stale: !!n.stale })),
    };
  }
}

let presenter = null;

/**
 * Sets up the viewer once on the meeting page and attaches the live client
 * (again after a new join); adds "Xem" (view) and "Trình bày" (present) to
 * the agenda's PDF documents. `app` is the meeting page's state.
 */
export function setupPresenter(client, app) {
  if (!presenter) {
    const role = (app.invitation && app.invitation.role) || (app.self && app.self.role) || '';
    const home = document.getElementById('stage') || document.body;
    const meetingId = app.invitation && app.invitation.meeting ? app.invitation.meeting.id : null;
    presenter = new Presenter({ home, token: app.token, role, meetingId });
    if (window.giaoban) window.giaoban.viewer = () => presenter.summary();
    const agenda = app.agenda;
    if (agenda) {
      agenda.docActions = (doc, version) => docButtons(presenter, agenda, doc, version);
      presenter.onRights = () => agenda.render();
      agenda.render();
    }
  }
  presenter.attach(client);
  return presenter;
}

/** The viewer's buttons of one document in the agenda panel (PDF only). */
function docButtons(p, agenda, doc, version) {
  if (!version || version.file_type !== 'pdf' || doc.withdrawn_at) return [];
  const target = { id: doc.id, version: version.version, title: doc.title };
  const out = [
    el('button', {
      type: 'button',
      class: 'btn btn-secondary btn-small doc-view',
      'aria-label': t('viewer.viewNamed', { title: doc.title }),
      onclick: () => {
        if (p.presentation) p.following = false;
        p.open(target, 1, 100);
        p.renderBar();
      },
    }, t('viewer.view')),
  ];
  const current = !agenda.currentItemId || agenda.currentItemId === doc.agenda_item_id;
  if (p.mayPresent() && current) {
    out.push(
      el('button', {
        type: 'button',
        class: 'btn btn-primary btn-small doc-present',
        'aria-label': t('viewer.presentNamed', { title: doc.title }),
        onclick: () => p.present(target),
      }, t('viewer.present')),
    );
  }
  return out;
}
