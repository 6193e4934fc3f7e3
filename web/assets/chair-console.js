// The chair's console on the meeting page (role chair or secretary): the
// speaking queue with waiting times, the floor, blocking a participant's
// microphone or camera, mute all, lock, remove, the current agenda item,
// start and end (chair only), the attendance summary and the conclusion of
// the current item (REST, with the invitation token). No protocol here:
// it calls the methods of the page's GiaobanClient (protocol.js) and reads
// what the page knows through the callbacks it is given.

import { apiRequest } from './api.js';
import { el, formatTime, toDate } from './documents.js';
import { errorText, getLang, roleText, t } from './i18n.js';
import { VoteConsole } from './vote.js';

/** How long an error stays under the console's head. */
const ERROR_SHOWN_MS = 6000;
/** Changes of the roster this close together refresh the attendance once. */
const ATTENDANCE_DEBOUNCE_MS = 700;

/** "m:ss" (or "h:mm:ss") since `since` (Unix seconds). */
export function waitedText(since, nowMs) {
  const s = Math.max(0, Math.floor((nowMs || Date.now()) / 1000 - Number(since || 0)));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}

/** "08:05": the hour and minute of `unixSeconds` in the page's language. */
export function clockText(unixSeconds) {
  const d = toDate(unixSeconds);
  if (!d) return '';
  try {
    return d.toLocaleTimeString(getLang() === 'vi' ? 'vi-VN' : 'en-GB', { hour: '2-digit', minute: '2-digit', hour12: false });
  } catch (_) {
    return d.toISOString().slice(11, 16);
  }
}

export class ChairConsole {
  /**
   * @param {object} o
   * @param {HTMLElement} o.root       the panel (#chair-panel)
   * @param {import('./protocol.js').GiaobanClient} o.client
   * @param {string} o.token           the invitation token (attendance REST call)
   * @param {string} o.meetingId
   * @param {string} o.role            'chair' or 'secretary'
   * @param {() => object[]} o.participants  the others: [{id, name, role, audio_blocked, video_blocked, audio_muted}]
   * @param {() => object[]|null} o.agendaItems  [{id, title}] or null before the agenda loaded
   * @param {(name: string) => Promise<string|null>} o.askReason  the reason to remove, or null
   * @param {() => Promise<boolean>} o.confirmEnd
   * @param {() => void} [o.onClose]
   * @param {import('./vote.js').VoteBoard} [o.votes]  the page's votes: the console opens, follows and closes them
   */
  constructor(o) {
    this.root = o.root;
    this.client = o.client;
    this.token = o.token;
    this.meetingId = o.meetingId;
    this.role = o.role;
    this.o = o;
    this.state = null; // meeting_state
    this.queue = [];
    /** The attendance report, null before it came, false when the server has none (404). */
    this.attendance = null;
    /** Declarations pushed since the last report: invitation id -> {leader, attendees, participant_id}. */
    this.declared = new Map();
    this.attendanceError = null;
    this._error = null;
    this._errorTimer = null;
    this._attTimer = null;
    this._attLoading = false;
    this._attAgain = false;
    this._ticker = null;
    this._build();
  }

  _build() {
    const r = this.root;
    r.textContent = '';
    this.head = el('div', { class: 'chair-head' });
    this.errorBox = el('div', { class: 'alert alert-error chair-error', role: 'alert', hidden: true });
    this.meetingBox = el('section', { class: 'chair-section chair-meeting' });
    this.floorBox = el('section', { class: 'chair-section chair-floor', 'aria-live': 'polite' });
    this.queueBox = el('section', { class: 'chair-section chair-queue' });
    this.itemBox = el('section', { class: 'chair-section chair-item' });
    this.attBox = el('section', { class: 'chair-section chair-attendance' });
    this.peopleBox = el('section', { class: 'chair-section chair-people' });
    this.voteBox = el('section', { class: 'chair-section chair-vote', id: 'chair-vote' });
    const body = el('div', { class: 'chair-body' }, this.errorBox, this.meetingBox, this.voteBox, this.floorBox, this.queueBox, this.itemBox, this.attBox, this.peopleBox);
    r.append(this.head, body);
    // The current item's conclusion: built once, so typing survives renders.
    this.conclusionBox = el('section', { class: 'chair-section chair-conclusion', id: 'chair-conclusion' });
    this.itemBox.after(this.conclusionBox);
    /** Item id -> text (null: cleared) pushed or saved since the agenda loaded. */
    this.conclusionTexts = new Map();
    this._conclusionFor = null;
    this._conclusionDirty = false;
    this._buildConclusion();
    this.client.addEventListener('conclusion_changed', (ev) => {
      this.conclusionTexts.set(ev.detail.itemId, ev.detail.text);
      this._renderConclusion();
    });
    // The current item: one select, kept across renders (focus, open list).
    this.itemSelect = el('select', { id: 'chair-item-select', class: 'chair-select' });
    this.itemSelect.addEventListener('change', () => {
      const id = this.itemSelect.value || null;
      this._act(() => this.client.setCurrentItem(id));
    });
    this.vote = this.o.votes
      ? new VoteConsole({
          root: this.voteBox,
          client: this.client,
          board: this.o.votes,
          agendaItems: () => this.o.agendaItems(),
          currentItem: () => (this.state && this.state.current_item_id) || null,
          showError: (code) => this.showError(code),
        })
      : null;
    this.render();
  }

  /** The open vote or its progress changed. */
  votesChanged() {
    this._renderVote();
  }

  /** Starts the waiting-time clock and the attendance summary. */
  start() {
    clearInterval(this._ticker);
    this._ticker = setInterval(() => this._tick(), 1000);
    this.refreshAttendance();
  }

  stop() {
    clearInterval(this._ticker);
    this._ticker = null;
    clearTimeout(this._attTimer);
  }

  setMeetingState(st) {
    this.state = st;
    this.render();
  }

  setQueue(queue) {
    this.queue = Array.isArray(queue) ? queue : [];
    this._renderQueue();
    this._renderPeople();
  }

  /** The roster changed (joined, left, blocked, muted): the lists again. */
  participantsChanged() {
    this._renderFloor();
    this._renderQueue();
    this._renderPeople();
  }

  /** A bridge point declared its leader and attendees (`attendance_declared`). */
  noteDeclared(d) {
    if (d && d.invitation_id) this.declared.set(d.invitation_id, d);
    this._renderAttendance();
    this.refreshAttendance();
  }

  /** Reads the attendance report again, soon (several changes: once). */
  refreshAttendance() {
    if (this.attendance === false) return; // the server has no such endpoint
    clearTimeout(this._attTimer);
    this._attTimer = setTimeout(() => this._loadAttendance(), ATTENDANCE_DEBOUNCE_MS);
  }

  async _loadAttendance() {
    if (this._attLoading) {
      this._attAgain = true;
      return;
    }
    this._attLoading = true;
    try {
      const report = await apiRequest('GET', `/api/meetings/${encodeURIComponent(this.meetingId)}/attendance`, { token: this.token });
      this.attendance = report && typeof report === 'object' ? report : null;
      this.attendanceError = null;
      // The report has them now.
      this.declared.clear();
    } catch (e) {
      // Not there (a server without attendance): no summary at all.
      if (e && e.status === 404) this.attendance = false;
      else this.attendanceError = (e && e.code) || 'unknown';
    } finally {
      this._attLoading = false;
    }
    this._renderAttendance();
    if (this._attAgain) {
      this._attAgain = false;
      this.refreshAttendance();
    }
  }

  showError(code) {
    this._error = code;
    this.errorBox.hidden = false;
    this.errorBox.textContent = errorText(code);
    this.errorBox.dataset.code = code;
    clearTimeout(this._errorTimer);
    this._errorTimer = setTimeout(() => {
      this._error = null;
      this.errorBox.hidden = true;
    }, ERROR_SHOWN_MS);
  }

  /** Runs a request; shows its error code in the console. */
  async _act(fn) {
    try {
      await fn();
    } catch (e) {
      this.showError((e && e.code) || 'unknown');
    }
  }

  _isChair() {
    return this.role === 'chair';
  }

  _nameOf(id) {
    const p = this.o.participants().find((x) => x.id === id);
    if (p) return p.name;
    const self = this.client.self;
    if (self && self.id === id) return `${self.name} (${t('meeting.you')})`;
    const q = this.queue.find((h) => h.participant_id === id);
    return q ? q.name : id;
  }

  render() {
    this._renderHead();
    this._renderMeeting();
    this._renderVote();
    this._renderFloor();
    this._renderQueue();
    this._renderItem();
    this._renderAttendance();
    this._renderPeople();
  }

  /** Replaces `box`'s content, keeping the focus on the button that had it. */
  _replace(box, ...children) {
    const active = document.activeElement;
    const key = active && box.contains(active) ? active.dataset.focusKey : null;
    box.textContent = '';
    box.append(...children.flat().filter(Boolean));
    if (key) {
      const again = box.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
      if (again) again.focus();
    }
  }

  _button(label, key, onclick, cls, extra) {
    return el('button', { type: 'button', class: `btn btn-small ${cls || 'btn-secondary'}`, dataset: { focusKey: key }, onclick, ...(extra || {}) }, label);
  }

  _renderHead() {
    const close = el(
      'button',
      { type: 'button', class: 'btn btn-icon chair-close', 'aria-label': t('chair.hide'), title: t('chair.hide'), onclick: () => this.o.onClose && this.o.onClose() },
      el('span', { 'aria-hidden': 'true', text: '✕' }),
    );
    this._replace(this.head, el('h2', { id: 'chair-heading', tabindex: '-1', text: t('chair.title') }), close);
  }

  _renderMeeting() {
    const st = this.state || {};
    const status = st.status || '';
    const started = status === 'in_progress';
    const before = status === 'draft' || status === 'scheduled';
    const badge = status ? el('span', { class: `status-badge status-${status}`, id: 'chair-status', dataset: { status }, text: t(`mstatus.${status}`) }) : null;
    const actions = el('div', { class: 'chair-actions' });
    if (this._isChair() && before) {
      actions.append(this._button(t('chair.start'), 'start', () => this._act(() => this.client.startMeeting()), 'btn-primary', { id: 'chair-start' }));
    }
    if (started) {
      actions.append(
        this._button(t('chair.muteAll'), 'mute-all', () => this._act(() => this.client.muteAll()), 'btn-secondary', { id: 'chair-mute-all' }),
        this._button(st.locked ? t('chair.unlock') : t('chair.lock'), 'lock', () => this._act(() => this.client.lockMeeting(!st.locked)), 'btn-secondary', {
          id: 'chair-lock',
          'aria-pressed': String(!!st.locked),
        }),
      );
    }
    if (this._isChair() && started) {
      actions.append(
        this._button(t('chair.end'), 'end', async () => {
          if (await this.o.confirmEnd()) this._act(() => this.client.endMeeting());
        }, 'btn-danger', { id: 'chair-end' }),
      );
    }
    const locked = st.locked ? el('p', { class: 'chair-locked small', id: 'chair-locked-note', text: t('chair.lockedNote') }) : null;
    this._replace(this.meetingBox, el('div', { class: 'chair-status-line' }, el('span', { class: 'muted', text: t('chair.status') }), badge), actions, locked);
  }

  /** Votes: while the meeting is in progress, or while one is open. */
  _renderVote() {
    const open = !!(this.o.votes && this.o.votes.poll);
    const show = !!this.vote && ((this.state && this.state.status === 'in_progress') || open);
    this.voteBox.hidden = !show;
    if (this.vote) this.vote.render();
  }

  _renderFloor() {
    const st = this.state || {};
    const floor = st.floor && st.floor.participant_id ? st.floor : null;
    const h = el('h3', { text: t('chair.floor') });
    if (!floor) {
      this._replace(this.floorBox, h, el('p', { class: 'muted', id: 'chair-floor-none', text: t('chair.floorNone') }));
      return;
    }
    this._replace(
      this.floorBox,
      h,
      el(
        'div',
        { class: 'chair-floor-holder', id: 'chair-floor-holder', dataset: { participantId: floor.participant_id } },
        el('span', { class: 'chair-name', text: this._nameOf(floor.participant_id) }),
        el('span', { class: 'chair-wait', dataset: { since: String(floor.since || 0) }, text: waitedText(floor.since) }),
      ),
      this._button(t('chair.takeFloor'), 'take-floor', () => this._act(() => this.client.takeFloor()), 'btn-secondary', { id: 'chair-take-floor' }),
    );
  }

  _renderQueue() {
    const h = el('h3', {}, t('chair.queue'), ' ', el('span', { class: 'count-badge', text: String(this.queue.length) }));
    if (this.queue.length === 0) {
      this._replace(this.queueBox, h, el('p', { class: 'muted', text: t('chair.queueEmpty') }));
      return;
    }
    const list = el(
      'ol',
      { class: 'chair-list chair-queue-list', id: 'chair-queue-list' },
      this.queue.map((hand, i) =>
        el(
          'li',
          { class: 'chair-row', dataset: { participantId: hand.participant_id, kind: hand.kind || 'speak' } },
          el(
            'div',
            { class: 'chair-row-main' },
            el('span', { class: 'chair-pos', text: `${i + 1}.` }),
            el('span', { class: 'chair-name', text: hand.name || this._nameOf(hand.participant_id) }),
            el('span', { class: `hand-kind-badge kind-${hand.kind || 'speak'}`, text: t(`hand.kind.${hand.kind || 'speak'}`) }),
            el('span', { class: 'chair-wait', title: t('chair.waited'), dataset: { since: String(hand.since || 0) }, text: waitedText(hand.since) }),
          ),
          el(
            'div',
            { class: 'chair-row-actions' },
            this._button(t('chair.giveFloor'), `give-${hand.participant_id}`, () => this._act(() => this.client.giveFloor(hand.participant_id)), 'btn-primary chair-give'),
            this._button(t('chair.clearHand'), `clear-${hand.participant_id}`, () => this._act(() => this.client.clearHand(hand.participant_id)), 'btn-secondary chair-clear'),
          ),
        ),
      ),
    );
    this._replace(this.queueBox, h, list);
  }

  _renderItem() {
    const items = this.o.agendaItems() || [];
    const current = (this.state && this.state.current_item_id) || '';
    const sel = this.itemSelect;
    const opts = [el('option', { value: '', text: t('chair.itemNone') })];
    items.forEach((item, i) => opts.push(el('option', { value: item.id, text: `${i + 1}. ${item.title}` })));
    sel.textContent = '';
    sel.append(...opts);
    sel.value = items.some((i) => i.id === current) ? current : '';
    sel.disabled = items.length === 0;
    const label = el('label', { class: 'field', for: 'chair-item-select' }, el('span', { text: t('chair.currentItem') }));
    this.itemBox.textContent = '';
    this.itemBox.append(label, sel);
    this._renderConclusion();
  }

  _buildConclusion() {
    this.conclusionNote = el('p', { class: 'muted small', id: 'chair-conclusion-none', text: t('chair.conclusionNoItem') });
    this.conclusionInput = el('textarea', {
      id: 'chair-conclusion-text',
      rows: 4,
      maxlength: 20000,
      'aria-labelledby': 'chair-conclusion-heading',
      placeholder: t('conclusion.placeholder'),
    });
    this.conclusionState = el('span', { class: 'muted small', id: 'chair-conclusion-state', 'aria-live': 'polite' });
    this.conclusionInput.addEventListener('input', () => {
      this._conclusionDirty = true;
      this.conclusionState.textContent = t('conclusion.unsaved');
    });
    this.conclusionSave = this._button(t('conclusion.save'), 'conclusion-save', () => this._saveConclusion(), 'btn-primary', { id: 'chair-conclusion-save' });
    this.conclusionEditor = el('div', {}, this.conclusionInput, el('div', { class: 'chair-conclusion-actions' }, this.conclusionSave, this.conclusionState));
    this.conclusionBox.append(el('h3', { id: 'chair-conclusion-heading', text: t('chair.conclusion') }), this.conclusionNote, this.conclusionEditor);
  }

  /** The conclusion of `itemId`: pushed or saved here, else the agenda's. */
  _conclusionOf(itemId) {
    if (this.conclusionTexts.has(itemId)) return this.conclusionTexts.get(itemId) || '';
    const item = (this.o.agendaItems() || []).find((i) => i.id === itemId);
    return (item && item.conclusion) || '';
  }

  /** Shows the current item's conclusion; keeps what is being typed. */
  _renderConclusion() {
    const current = (this.state && this.state.current_item_id) || null;
    const known = !!current && (this.o.agendaItems() || []).some((i) => i.id === current);
    this.conclusionNote.hidden = known;
    this.conclusionEditor.hidden = !known;
    this.conclusionBox.dataset.itemId = known ? current : '';
    if (!known) {
      this._conclusionFor = null;
      return;
    }
    if (current !== this._conclusionFor) {
      this._conclusionFor = current;
      this._conclusionDirty = false;
      this.conclusionState.textContent = '';
      this.conclusionInput.value = this._conclusionOf(current);
    } else if (!this._conclusionDirty) {
      this.conclusionInput.value = this._conclusionOf(current);
    }
  }

  async _saveConclusion() {
    const itemId = this._conclusionFor;
    if (!itemId) return;
    const text = this.conclusionInput.value;
    this.conclusionSave.disabled = true;
    try {
      const c = await apiRequest('PUT', `/api/agenda/${encodeURIComponent(itemId)}/conclusion`, { token: this.token, body: { text } });
      const saved = c && typeof c.text === 'string' ? c.text : null;
      this.conclusionTexts.set(itemId, saved);
      if (this._conclusionFor === itemId && this.conclusionInput.value === text) {
        this._conclusionDirty = false;
        this.conclusionInput.value = saved || '';
        this.conclusionState.textContent = t(saved ? 'conclusion.saved' : 'conclusion.cleared');
      }
    } catch (e) {
      this.showError((e && e.code) || 'unknown');
    } finally {
      this.conclusionSave.disabled = false;
    }
  }

  _renderAttendance() {
    const a = this.attendance;
    this.attBox.hidden = a === false;
    if (a === false) return;
    const h = el('h3', { text: t('chair.attendance') });
    const refresh = this._button(t('chair.attendanceRefresh'), 'att-refresh', () => this._loadAttendance(), 'btn-secondary');
    if (!a || !a.summary) {
      const msg = this.attendanceError
        ? el('p', { class: 'alert alert-error', text: errorText(this.attendanceError) })
        : el('p', { class: 'muted', text: t('chair.attendanceLoading') });
      this._replace(this.attBox, h, msg, this.attendanceError ? refresh : null);
      return;
    }
    const s = a.summary;
    const quorum = el(
      'p',
      { class: `chair-quorum ${s.quorum_met ? 'quorum-met' : 'quorum-not-met'}`, id: 'chair-quorum', dataset: { met: String(!!s.quorum_met) } },
      t(s.quorum_met ? 'chair.quorumMet' : 'chair.quorumNotMet', { present: s.members_present ?? 0, needed: s.quorum_needed ?? 0 }),
    );
    const summary = el('p', { class: 'chair-present', id: 'chair-present', dataset: { present: String(s.present ?? 0), expected: String(s.expected ?? 0) } },
      t('chair.present', { present: s.present ?? 0, expected: s.expected ?? 0 }));
    // The bridge points with their declared leaders (the report's, then newer pushes).
    const rows = (Array.isArray(a.rows) ? a.rows : []).filter((r) => r.role === 'bridge' || r.role === 'delegate' || r.leader);
    const list = el(
      'ul',
      { class: 'chair-list chair-att-list', id: 'chair-att-list' },
      rows.map((r) => {
        const d = this.declared.get(r.invitation_id);
        const leader = d ? d.leader : r.leader;
        const attendees = d ? d.attendees : r.attendees;
        // The first join (the report's `first_joined_at`, Unix seconds).
        const joinedAt = Number(r.first_joined_at) > 0 ? Number(r.first_joined_at) : null;
        return el(
          'li',
          { class: `chair-att-row ${r.present ? 'present' : 'absent'}`, dataset: { invitationId: r.invitation_id || '', present: String(!!r.present) } },
          el('span', { class: 'att-dot', 'aria-hidden': 'true' }),
          el('span', { class: 'chair-name', text: r.unit || r.name }),
          el('span', { class: 'att-state muted small', text: t(r.present ? 'chair.attPresent' : 'chair.attAbsent') }),
          joinedAt
            ? el('span', { class: 'att-joined muted small', title: formatTime(joinedAt), dataset: { firstJoined: String(joinedAt) }, text: t('chair.attJoined', { time: clockText(joinedAt) }) })
            : el('span', { class: 'att-joined muted small', dataset: { firstJoined: '' }, text: t('chair.attNotJoined') }),
          leader
            ? el('span', { class: 'att-leader small', text: t('chair.attLeader', { leader, n: attendees ?? 0 }) })
            : el('span', { class: 'att-leader muted small', text: t('chair.attUndeclared') }),
        );
      }),
    );
    this._replace(this.attBox, h, summary, quorum, rows.length ? list : null, refresh);
  }

  _renderPeople() {
    const people = this.o.participants();
    const floorId = this.state && this.state.floor ? this.state.floor.participant_id : null;
    const h = el('h3', {}, t('chair.people'), ' ', el('span', { class: 'count-badge', text: String(people.length) }));
    if (people.length === 0) {
      this._replace(this.peopleBox, h, el('p', { class: 'muted', text: t('meeting.alone') }));
      return;
    }
    const list = el(
      'ul',
      { class: 'chair-list chair-people-list', id: 'chair-people-list' },
      people.map((p) => {
        const isChair = p.role === 'chair';
        const badges = [];
        if (p.id === floorId) badges.push(el('span', { class: 'floor-badge', text: t('tile.floor') }));
        if (p.audio_blocked) badges.push(el('span', { class: 'blocked-badge', text: t('chair.audioBlocked') }));
        if (p.video_blocked) badges.push(el('span', { class: 'blocked-badge', text: t('chair.videoBlocked') }));
        const actions = [];
        if (!isChair) {
          actions.push(
            this._button(p.audio_blocked ? t('chair.unblockAudio') : t('chair.blockAudio'), `audio-${p.id}`,
              () => this._act(() => this.client.muteParticipant(p.id, 'audio', !p.audio_blocked)), 'btn-secondary chair-block-audio', { 'aria-pressed': String(!!p.audio_blocked) }),
            this._button(p.video_blocked ? t('chair.unblockVideo') : t('chair.blockVideo'), `video-${p.id}`,
              () => this._act(() => this.client.muteParticipant(p.id, 'video', !p.video_blocked)), 'btn-secondary chair-block-video', { 'aria-pressed': String(!!p.video_blocked) }),
          );
        }
        if (p.role !== 'observer' && p.id !== floorId) {
          actions.push(this._button(t('chair.giveFloor'), `pfloor-${p.id}`, () => this._act(() => this.client.giveFloor(p.id)), 'btn-secondary chair-give'));
        }
        if (!isChair) {
          actions.push(
            this._button(t('chair.remove'), `remove-${p.id}`, async () => {
              const reason = await this.o.askReason(p.name);
              if (reason) this._act(() => this.client.removeParticipant(p.id, reason));
            }, 'btn-danger-outline chair-remove'),
          );
        }
        return el(
          'li',
          { class: 'chair-row', dataset: { participantId: p.id } },
          el('div', { class: 'chair-row-main' }, el('span', { class: 'chair-name', text: p.name }), el('span', { class: 'role-badge', text: roleText(p.role) }), badges),
          el('div', { class: 'chair-row-actions' }, actions),
        );
      }),
    );
    this._replace(this.peopleBox, h, list);
  }

  /** Every second: the waiting times. */
  _tick() {
    const now = Date.now();
    for (const node of this.root.querySelectorAll('.chair-wait[data-since]')) {
      node.textContent = waitedText(Number(node.dataset.since), now);
    }
  }

  /** For tests: what the console shows. */
  summary() {
    const rows = (sel) => [...this.root.querySelectorAll(sel)];
    return {
      status: (this.root.querySelector('#chair-status') || { dataset: {} }).dataset.status || null,
      floor: (this.root.querySelector('#chair-floor-holder') || { dataset: {} }).dataset.participantId || null,
      queue: rows('#chair-queue-list > li').map((li) => ({
        id: li.dataset.participantId,
        kind: li.dataset.kind,
        name: li.querySelector('.chair-name').textContent,
        waited: li.querySelector('.chair-wait').textContent,
      })),
      attendance:
        this.attendance === false
          ? null
          : {
              present: (this.root.querySelector('#chair-present') || { dataset: {} }).dataset.present ?? null,
              expected: (this.root.querySelector('#chair-present') || { dataset: {} }).dataset.expected ?? null,
              quorum_met: (this.root.querySelector('#chair-quorum') || { dataset: {} }).dataset.met ?? null,
              rows: rows('#chair-att-list > li').map((li) => ({
                invitation_id: li.dataset.invitationId,
                present: li.dataset.present === 'true',
                name: li.querySelector('.chair-name').textContent,
                state: li.querySelector('.att-state').textContent,
                leader: li.querySelector('.att-leader').textContent,
                first_joined_at: Number(li.querySelector('.att-joined').dataset.firstJoined) || null,
                joined: li.querySelector('.att-joined').textContent,
              })),
            },
      people: rows('#chair-people-list > li').map((li) => li.dataset.participantId),
      conclusion: this.conclusionEditor.hidden ? null : { item_id: this._conclusionFor, text: this.conclusionInput.value, dirty: this._conclusionDirty },
      vote: this.vote && !this.voteBox.hidden ? this.vote.summary() : null,
    };
  }
}
