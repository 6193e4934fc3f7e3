// Live votes on the meeting page (docs/protocol.md, "Votes"; issue 21).
//
// `VoteBoard` is what every participant sees: the voting card for a voter
// (the question, three big buttons, a confirmation, then "voted"), a banner
// for the others while a vote is open, and the result when it closes (the
// tally, passed or not and how that was reached) until it is dismissed.
// `VoteConsole` is the vote section of the chair's console (chair and
// secretary): the form that opens a vote, the live progress, closing it.
// No protocol here: both call the page's GiaobanClient (protocol.js).

import { el } from './documents.js';
import { errorText, t } from './i18n.js';
import { VOTE_CHOICES, VOTE_RULES } from './protocol.js';

/** The invitation roles that vote, per choice of the console's form. */
const VOTERS = {
  members: ['chair', 'member'],
  bridges: ['chair', 'member', 'bridge'],
};

/** A rule in plain words ("Quá nửa tổng số thành viên UBND tán thành"). */
export function ruleText(rule) {
  return VOTE_RULES.includes(rule) ? t(`vote.rule.${rule}`) : String(rule || '');
}

/** The lines that say how a result was reached, from `poll.outcome`. */
export function howLines(poll) {
  const o = (poll && poll.outcome) || {};
  const tally = o.tally || {};
  const lines = [t('vote.howRule', { rule: ruleText(o.rule || poll.rule) })];
  const presentBase = (o.rule || poll.rule) === 'present_majority';
  lines.push(t(presentBase ? 'vote.howBasePresent' : 'vote.howBaseAll', { base: o.base ?? 0 }));
  lines.push(t('vote.howNeeded', { needed: o.needed ?? 0, for: tally.for ?? 0 }));
  lines.push(
    t(o.quorum_met ? 'vote.howQuorumMet' : 'vote.howQuorumNotMet', {
      present: o.present_members ?? 0,
      members: o.committee_members ?? 0,
      needed: o.quorum_needed ?? 0,
    }),
  );
  if (o.tie_broken_by_chair) lines.push(t('vote.howTie'));
  if (poll.secret) lines.push(t('vote.secret'));
  return lines;
}

export class VoteBoard {
  /**
   * @param {object} o
   * @param {HTMLElement} o.card     the voting card (over the stage)
   * @param {HTMLElement} o.result   the result card (over the stage)
   * @param {HTMLElement} o.banner   the line above the stage for those who do not vote
   * @param {() => import('./protocol.js').GiaobanClient|null} o.client
   * @param {() => object|null} o.self   our participant ({role})
   * @param {(id: string) => string|null} o.itemTitle  an agenda item's title
   * @param {() => void} [o.onChange]   the open poll or its progress changed (the console)
   */
  constructor(o) {
    this.o = o;
    /** The open poll, or null. */
    this.poll = null;
    /** Whether our invitation has voted in it. */
    this.voted = false;
    /** Our choice, when this page sent it (not known after a reload). */
    this.choice = null;
    /** The choice waiting for its confirmation. */
    this.pending = null;
    this.sending = false;
    this.error = null;
    /** `vote_progress` of the open poll: {voted, eligible, voters}. */
    this.progress = null;
    /** The last closed poll (its result), until dismissed. */
    this.result = null;
  }

  /** A fresh join: an open poll comes again with `vote_opened`; the last result stays. */
  joined() {
    this.poll = null;
    this._reset();
    this.progress = null;
    this.render();
    this._changed();
  }

  /** `vote_opened`: a new poll (voted undefined) or the open one after a (re)join. */
  opened(poll, voted) {
    const same = this.poll && this.poll.id === poll.id;
    this.poll = poll;
    if (!same) {
      this._reset();
      this.progress = { voted: Number(poll.voted) || 0, eligible: Number(poll.eligible) || 0, voters: null };
    }
    if (voted === true) {
      this.voted = true;
      this.pending = null;
    } else if (voted === false && !this.sending) {
      this.voted = false;
    }
    // The new vote replaces the last result on the screen.
    if (!same) this.result = null;
    this.render();
    this._changed();
  }

  /** `vote_progress` (chair and secretary). */
  progressed(p) {
    if (!this.poll || p.pollId !== this.poll.id) return;
    this.progress = { voted: p.voted, eligible: p.eligible, voters: p.voters };
    this._changed();
  }

  /** `vote_closed`: the result for everyone. */
  closed(poll) {
    if (this.poll && this.poll.id === poll.id) this.poll = null;
    this.result = poll;
    this._reset();
    this.progress = null;
    this.render();
    this._changed();
  }

  dismiss() {
    this.result = null;
    this.render();
  }

  _reset() {
    this.voted = false;
    this.choice = null;
    this.pending = null;
    this.sending = false;
    this.error = null;
  }

  _changed() {
    if (this.o.onChange) this.o.onChange();
  }

  /** Whether our role votes in the open poll. */
  canVote() {
    const self = this.o.self();
    const roles = this.poll && Array.isArray(this.poll.voter_roles) ? this.poll.voter_roles : [];
    return !!(self && roles.includes(self.role));
  }

  choose(choice) {
    if (!VOTE_CHOICES.includes(choice) || this.voted || this.sending) return;
    this.pending = choice;
    this.error = null;
    this.render();
    const ok = this.o.card.querySelector('#vote-confirm');
    if (ok) ok.focus();
  }

  async confirm() {
    const client = this.o.client();
    const poll = this.poll;
    const choice = this.pending;
    if (!client || !poll || !choice || this.sending) return;
    this.sending = true;
    this.error = null;
    this.render();
    try {
      await client.castVote(poll.id, choice);
      if (this.poll !== poll) return;
      this.voted = true;
      this.choice = choice;
    } catch (e) {
      if (this.poll !== poll) return;
      const code = (e && e.code) || 'unknown';
      // Already counted (a request sent again after a reconnection): voted.
      if (code === 'already_voted') this.voted = true;
      else this.error = code;
    } finally {
      if (this.poll === poll) {
        this.sending = false;
        this.pending = this.voted ? null : this.pending;
        this.render();
      }
    }
  }

  render() {
    this._renderCard();
    this._renderBanner();
    this._renderResult();
  }

  _renderCard() {
    const card = this.o.card;
    const poll = this.poll;
    const show = !!poll && this.canVote();
    card.hidden = !show;
    card.classList.toggle('vote-card-done', show && this.voted);
    card.dataset.state = !show ? '' : this.voted ? 'voted' : this.sending ? 'sending' : this.pending ? 'confirm' : 'choose';
    if (!show) {
      card.textContent = '';
      return;
    }
    const parts = [
      el('div', { class: 'vote-kicker' }, el('span', { text: t('vote.title') }), poll.secret ? el('span', { class: 'vote-secret-badge', text: t('vote.secret') }) : null),
      el('h2', { class: 'vote-question', id: 'vote-question-text', tabindex: '-1', text: poll.question }),
    ];
    const item = poll.agenda_item_id ? this.o.itemTitle(poll.agenda_item_id) : null;
    if (item) parts.push(el('p', { class: 'vote-item small', text: t('vote.item', { item }) }));
    if (this.voted) {
      parts.push(
        el('p', { class: 'vote-done', id: 'vote-done', role: 'status' }, el('span', { class: 'vote-done-mark', 'aria-hidden': 'true', text: '✓' }), t('vote.voted')),
      );
      // The choice stays off the screen of a secret ballot.
      if (this.choice && !poll.secret) parts.push(el('p', { class: 'small', id: 'vote-done-choice', text: t('vote.votedChoice', { choice: t(`vote.choice.${this.choice}`) }) }));
      parts.push(el('p', { class: 'small muted-light', text: t('vote.votedWait') }));
    } else if (this.pending) {
      parts.push(
        el('p', { class: `vote-pending choice-${this.pending}`, id: 'vote-pending', role: 'status', text: t('vote.confirmAsk', { choice: t(`vote.choice.${this.pending}`) }) }),
        el('p', { class: 'small', text: t('vote.confirmHint') }),
        el(
          'div',
          { class: 'vote-confirm-row' },
          el('button', { type: 'button', id: 'vote-confirm', class: 'btn btn-primary vote-big', disabled: this.sending, onclick: () => this.confirm() }, this.sending ? t('vote.sending') : t('vote.confirm')),
          el('button', { type: 'button', id: 'vote-change', class: 'btn btn-secondary vote-big', disabled: this.sending, onclick: () => this._change() }, t('vote.change')),
        ),
      );
    } else {
      parts.push(
        el('p', { class: 'small', text: t(poll.secret ? 'vote.secretNote' : 'vote.namedNote') }),
        el(
          'div',
          { class: 'vote-choices', role: 'group', 'aria-labelledby': 'vote-question-text' },
          VOTE_CHOICES.map((c) =>
            el('button', { type: 'button', class: `vote-choice choice-${c}`, dataset: { choice: c }, onclick: () => this.choose(c) }, t(`vote.choice.${c}`)),
          ),
        ),
      );
    }
    if (this.error) parts.push(el('p', { class: 'alert alert-error', id: 'vote-error', role: 'alert', dataset: { code: this.error }, text: errorText(this.error) }));
    const focused = document.activeElement && card.contains(document.activeElement) ? document.activeElement.id : null;
    card.textContent = '';
    card.append(...parts);
    if (focused) {
      const again = card.querySelector(`#${focused}`);
      if (again) again.focus();
    }
  }

  _change() {
    this.pending = null;
    this.error = null;
    this.render();
    const first = this.o.card.querySelector('.vote-choice');
    if (first) first.focus();
  }

  _renderBanner() {
    const b = this.o.banner;
    const show = !!this.poll && !this.canVote();
    b.hidden = !show;
    b.textContent = show ? t(this.poll.secret ? 'vote.inProgressSecret' : 'vote.inProgress', { question: this.poll.question }) : '';
  }

  _renderResult() {
    const box = this.o.result;
    const poll = this.result;
    box.hidden = !poll;
    box.textContent = '';
    if (!poll) return;
    const o = poll.outcome || {};
    const tally = o.tally || {};
    const passed = !!o.passed;
    box.dataset.passed = String(passed);
    box.append(
      el(
        'div',
        { class: 'vote-result-head' },
        el('h2', { id: 'vote-result-title', tabindex: '-1', text: t('vote.result') }),
        el('button', { type: 'button', id: 'vote-result-close', class: 'btn btn-secondary btn-small', onclick: () => this.dismiss() }, t('vote.dismiss')),
      ),
      el('p', { class: 'vote-question', text: poll.question }),
      el('p', { class: `vote-verdict ${passed ? 'passed' : 'failed'}`, id: 'vote-verdict', text: t(passed ? 'vote.passed' : 'vote.failed') }),
      el(
        'dl',
        { class: 'vote-tally', id: 'vote-tally' },
        VOTE_CHOICES.map((c) =>
          el('div', { class: `vote-tally-cell choice-${c}`, dataset: { choice: c } }, el('dt', { text: t(`vote.choice.${c}`) }), el('dd', { text: String(tally[c] ?? 0) })),
        ),
      ),
      el('p', { class: 'small', id: 'vote-turnout', text: t('vote.turnout', { voted: o.voted ?? 0, eligible: o.eligible ?? poll.eligible ?? 0 }) }),
      el('h3', { text: t('vote.how') }),
      el('ul', { class: 'vote-how', id: 'vote-how' }, howLines(poll).map((line) => el('li', { text: line }))),
    );
  }

  /** For tests: what the page shows of votes. */
  summary() {
    const card = this.o.card;
    const res = this.o.result;
    const rect = (node) => {
      const r = node.getBoundingClientRect();
      return { x: Math.round(r.x), y: Math.round(r.y), width: Math.round(r.width), height: Math.round(r.height) };
    };
    return {
      card: card.hidden
        ? null
        : {
            state: card.dataset.state,
            question: (card.querySelector('.vote-question') || {}).textContent || '',
            secret: !!card.querySelector('.vote-secret-badge'),
            item: (card.querySelector('.vote-item') || {}).textContent || null,
            buttons: [...card.querySelectorAll('.vote-choice')].map((b) => ({ choice: b.dataset.choice, text: b.textContent, ...rect(b) })),
            rect: rect(card),
          },
      banner: this.o.banner.hidden ? null : this.o.banner.textContent,
      result: res.hidden
        ? null
        : {
            passed: res.dataset.passed === 'true',
            verdict: (res.querySelector('#vote-verdict') || {}).textContent || '',
            tally: Object.fromEntries([...res.querySelectorAll('.vote-tally-cell')].map((c) => [c.dataset.choice, Number(c.querySelector('dd').textContent)])),
            turnout: (res.querySelector('#vote-turnout') || {}).textContent || '',
            how: [...res.querySelectorAll('#vote-how li')].map((li) => li.textContent),
            rect: rect(res),
          },
    };
  }
}

/** The vote section of the chair's console. */
export class VoteConsole {
  /**
   * @param {object} o
   * @param {HTMLElement} o.root     the console's section
   * @param {import('./protocol.js').GiaobanClient} o.client
   * @param {VoteBoard} o.board      the page's votes (the open poll, its progress, the last result)
   * @param {() => object[]|null} o.agendaItems  [{id, title}]
   * @param {() => string|null} o.currentItem    the item under discussion
   * @param {(code: string) => void} o.showError
   */
  constructor(o) {
    this.o = o;
    this.root = o.root;
    this.confirming = false;
    this.busy = false;
    this._build();
  }

  _build() {
    const radio = (name, value, label, checked) =>
      el('label', { class: 'vote-radio' }, el('input', { type: 'radio', name, value, checked }), el('span', { text: label }));
    this.heading = el('h3', {});
    this.question = el('textarea', { id: 'vote-question', rows: '3', maxlength: '1000', class: 'vote-textarea' });
    this.item = el('select', { id: 'vote-item', class: 'chair-select' });
    this.rule = el('select', { id: 'vote-rule', class: 'chair-select' });
    this.formError = el('p', { class: 'alert alert-error', id: 'vote-form-error', role: 'alert', hidden: true });
    this.labels = {};
    const label = (key) => (this.labels[key] = el('span', {}));
    this.kindSet = el('fieldset', { class: 'vote-fieldset' }, el('legend', {}, label('kind')), radio('vote-kind', 'named', '', true), radio('vote-kind', 'secret', '', false));
    this.votersSet = el('fieldset', { class: 'vote-fieldset' }, el('legend', {}, label('voters')), radio('vote-voters', 'members', '', true), radio('vote-voters', 'bridges', '', false));
    this.openButton = el('button', { type: 'submit', id: 'vote-open', class: 'btn btn-primary' });
    this.form = el(
      'form',
      { class: 'vote-form', id: 'vote-form' },
      el('label', { class: 'field' }, label('question'), this.question),
      el('label', { class: 'field' }, label('item'), this.item),
      this.kindSet,
      el('label', { class: 'field' }, label('rule'), this.rule),
      this.votersSet,
      this.formError,
      this.openButton,
    );
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this._open();
    });
    this.live = el('div', { class: 'vote-live', id: 'vote-live', 'aria-live': 'polite' });
    this.root.textContent = '';
    this.root.append(this.heading, this.form, this.live);
    this.render();
  }

  /** Labels, the agenda's options, the form or the live progress. */
  render() {
    this.heading.textContent = t('vote.console');
    this.labels.question.textContent = t('vote.question');
    this.labels.item.textContent = t('vote.itemLabel');
    this.labels.kind.textContent = t('vote.kind');
    this.labels.rule.textContent = t('vote.ruleLabel');
    this.labels.voters.textContent = t('vote.votersLabel');
    this.question.placeholder = t('vote.questionHint');
    const texts = { named: 'vote.kindNamed', secret: 'vote.kindSecret', members: 'vote.votersMembers', bridges: 'vote.votersBridges' };
    for (const input of this.root.querySelectorAll('.vote-radio input')) input.nextElementSibling.textContent = t(texts[input.value]);
    this.openButton.textContent = t('vote.open');
    this.openButton.disabled = this.busy;
    // The rule select: the three rules in plain words (the choice kept).
    if (this.rule.options.length === 0) for (const r of VOTE_RULES) this.rule.append(el('option', { value: r }));
    for (const opt of this.rule.options) opt.textContent = ruleText(opt.value);
    this._renderItems();
    const poll = this.o.board.poll;
    this.form.hidden = !!poll;
    this._renderLive(poll);
  }

  _renderItems() {
    const items = this.o.agendaItems() || [];
    const chosen = this._itemTouched ? this.item.value : this.o.currentItem() || '';
    // Rebuilt only when the agenda or the language changed (an open list stays open).
    const key = JSON.stringify([t('vote.itemNone'), items.map((it) => [it.id, it.title])]);
    if (key === this._itemsKey) {
      if (!this._itemTouched) this.item.value = items.some((it) => it.id === chosen) ? chosen : '';
      return;
    }
    this._itemsKey = key;
    this.item.textContent = '';
    this.item.append(el('option', { value: '', text: t('vote.itemNone') }));
    items.forEach((it, i) => this.item.append(el('option', { value: it.id, text: `${i + 1}. ${it.title}` })));
    this.item.value = items.some((it) => it.id === chosen) ? chosen : '';
    if (!this._itemWired) {
      this._itemWired = true;
      this.item.addEventListener('change', () => {
        this._itemTouched = true;
      });
    }
  }

  _renderLive(poll) {
    const live = this.live;
    live.textContent = '';
    const board = this.o.board;
    if (!poll) {
      const r = board.result;
      if (r && r.outcome) {
        const o = r.outcome;
        const tally = o.tally || {};
        live.append(
          el('p', { class: 'small', id: 'vote-last' }, t('vote.lastResult', { verdict: t(o.passed ? 'vote.passed' : 'vote.failed'), for: tally.for ?? 0, against: tally.against ?? 0, abstain: tally.abstain ?? 0 })),
        );
      }
      return;
    }
    const p = board.progress || { voted: poll.voted || 0, eligible: poll.eligible || 0, voters: null };
    live.append(
      el('p', { class: 'vote-live-question', text: poll.question }),
      el('p', { class: 'small', text: `${ruleText(poll.rule)}${poll.secret ? ` · ${t('vote.secret')}` : ''}` }),
      el('p', { class: 'vote-progress', id: 'vote-progress', dataset: { voted: String(p.voted), eligible: String(p.eligible) }, text: t('vote.progress', { voted: p.voted, eligible: p.eligible }) }),
      el('progress', { max: String(Math.max(1, p.eligible)), value: String(Math.min(p.voted, Math.max(1, p.eligible))), class: 'vote-progress-bar' }),
    );
    if (poll.secret) {
      live.append(el('p', { class: 'small muted', text: t('vote.progressSecret') }));
    } else if (Array.isArray(p.voters)) {
      live.append(
        p.voters.length
          ? el('ul', { class: 'chair-list vote-voters', id: 'vote-voters' }, p.voters.map((name) => el('li', { class: 'vote-voter', text: name })))
          : el('p', { class: 'small muted', text: t('vote.progressNone') }),
      );
    }
    if (this.confirming) {
      live.append(
        el('p', { class: 'vote-close-ask', text: t('vote.closeAsk') }),
        el(
          'div',
          { class: 'chair-actions' },
          el('button', { type: 'button', id: 'vote-close-confirm', class: 'btn btn-danger', disabled: this.busy, onclick: () => this._close() }, t('vote.closeConfirm')),
          el('button', { type: 'button', id: 'vote-close-cancel', class: 'btn btn-secondary', onclick: () => this._askClose(false) }, t('action.cancel')),
        ),
      );
    } else {
      live.append(el('button', { type: 'button', id: 'vote-close', class: 'btn btn-danger', onclick: () => this._askClose(true) }, t('vote.close')));
    }
  }

  _askClose(on) {
    this.confirming = on;
    this.render();
    const b = this.root.querySelector(on ? '#vote-close-confirm' : '#vote-close');
    if (b) b.focus();
  }

  async _open() {
    const question = this.question.value.trim();
    if (!question) {
      this.formError.hidden = false;
      this.formError.textContent = t('vote.needQuestion');
      this.question.focus();
      return;
    }
    this.formError.hidden = true;
    const val = (name) => (this.root.querySelector(`input[name="${name}"]:checked`) || {}).value;
    this.busy = true;
    this.render();
    try {
      await this.o.client.openVote({
        question,
        itemId: this.item.value || null,
        secret: val('vote-kind') === 'secret',
        rule: this.rule.value,
        voters: VOTERS[val('vote-voters')] || VOTERS.members,
      });
      this.question.value = '';
      this._itemTouched = false;
    } catch (e) {
      this.o.showError((e && e.code) || 'unknown');
    } finally {
      this.busy = false;
      this.render();
    }
  }

  async _close() {
    const poll = this.o.board.poll;
    if (!poll) return;
    this.busy = true;
    this.render();
    try {
      await this.o.client.closeVote(poll.id);
    } catch (e) {
      this.o.showError((e && e.code) || 'unknown');
    } finally {
      this.busy = false;
      this.confirming = false;
      this.render();
    }
  }

  /** For tests: the console's vote section. */
  summary() {
    const prog = this.root.querySelector('#vote-progress');
    return {
      form: !this.form.hidden,
      progress: prog ? { voted: Number(prog.dataset.voted), eligible: Number(prog.dataset.eligible), text: prog.textContent } : null,
      voters: [...this.root.querySelectorAll('#vote-voters li')].map((li) => li.textContent),
    };
  }
}
