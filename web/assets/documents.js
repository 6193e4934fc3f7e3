// Documents as both the secretariat and the participants see them: the
// signature badge, the verified format, sizes and times, withdrawn
// documents, and downloading a version with a Bearer token (fetched as a
// blob: a plain link could not carry it). An uploaded file is never opened
// as a page of this origin: it is only ever saved as a download.

import { apiBlob } from './api.js';
import { getLang, t } from './i18n.js';

const STATUSES = ['valid', 'invalid', 'untrusted', 'no_signature', 'unreadable', 'not_checked'];

/** `el('tag', {class, text, ...attrs}, ...children)`: a small DOM builder. */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/** A time given as Unix seconds, milliseconds or an RFC 3339 string, as a Date. */
export function toDate(v) {
  if (v === undefined || v === null || v === '') return null;
  let d;
  if (typeof v === 'number') d = new Date(v < 1e11 ? v * 1000 : v);
  else if (/^\d+$/.test(String(v))) d = new Date(Number(v) * 1000);
  else d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A date and time in the page's language (e.g. "24 thg 11, 2026 10:00"). */
export function formatTime(v) {
  const d = toDate(v);
  if (!d) return '';
  try {
    const locale = getLang() === 'vi' ? 'vi-VN' : 'en-GB';
    const date = d.toLocaleDateString(locale, { day: '2-digit', month: '2-digit', year: 'numeric' });
    const time = d.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit', hour12: false });
    return `${date} ${time}`;
  } catch (_) {
    return d.toISOString();
  }
}

/** A byte count as "1,2 MB". */
export function formatSize(bytes) {
  const n = Number(bytes) || 0;
  const locale = getLang() === 'vi' ? 'vi-VN' : 'en-GB';
  const fmt = (x) => x.toLocaleString(locale, { maximumFractionDigits: 1 });
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${fmt(n / 1024)} KB`;
  if (n < 1024 * 1024 * 1024) return `${fmt(n / (1024 * 1024))} MB`;
  return `${fmt(n / (1024 * 1024 * 1024))} GB`;
}

/** The signature report of a document version (`signature`, or the stored `signature_report`). */
export function signatureOf(version) {
  if (!version) return null;
  return version.signature || version.signature_report || null;
}

/** The file status of a version's signature report. */
export function signatureStatus(sig) {
  const s = sig && typeof sig.status === 'string' ? sig.status : 'not_checked';
  return STATUSES.includes(s) ? s : 'not_checked';
}

/**
 * The revocation check of a report: `checked_good`, `revoked` or
 * `not_checked` (also for a report stored before revocation was checked).
 */
export function revocationStatus(sig) {
  const ok = ['checked_good', 'revoked', 'not_checked'];
  if (sig && ok.includes(sig.revocation)) return sig.revocation;
  if (sig && sig.revocation && ok.includes(sig.revocation.status)) return sig.revocation.status;
  return 'not_checked';
}

/** One signature's revocation line: "Checked: not revoked · CRL valid until …". */
function revocationLine(s) {
  const st = revocationStatus(s);
  const parts = [t(`sigrev.${st}`)];
  // The certificate that gives the signature its status (signer first).
  const certs = s.revocation && Array.isArray(s.revocation.certificates) ? s.revocation.certificates : [];
  const first = certs.find((c) => c && c.status === st) || null;
  if (first && first.revoked_at) {
    const at = formatTime(first.revoked_at);
    parts.push(t(st === 'revoked' ? 'sigrev.revokedAt' : 'sigrev.revokedLater', { time: at }));
  } else if (first && first.crl && first.crl.next_update) {
    const key = st === 'checked_good' ? 'sigrev.crlUntil' : 'sigrev.crlExpired';
    parts.push(t(key, { time: formatTime(first.crl.next_update) }));
  }
  return parts.join(' · ');
}

/** The text of one reason: ours for a known code, else the server's message. */
function reasonText(r) {
  const key = `sigreason.${r.code}`;
  const known = t(key);
  return known !== key ? known : r.message || r.code || '';
}

function signerLine(s) {
  const parts = [];
  if (s.signer_name) parts.push(s.signer_name);
  const org = s.organisation || s.organization;
  if (org) parts.push(org);
  const when = formatTime(s.signing_time_unix || s.signing_time);
  if (when) parts.push(t('sig.signedAt', { time: when }));
  return parts.join(' · ');
}

/**
 * The signature badge of a document version: the verdict ("Hợp lệ"…), the
 * first signer, and on expand (or hover) every signature with its reasons.
 */
export function signatureBadge(sig) {
  const status = signatureStatus(sig);
  const signatures = sig && Array.isArray(sig.signatures) ? sig.signatures : [];
  const reasons = [];
  for (const s of signatures) for (const r of s.reasons || []) reasons.push(reasonText(r));
  for (const r of Array.isArray(sig && sig.reasons) ? sig.reasons : []) if (r.code !== 'no_signature') reasons.push(reasonText(r));
  // A PDF the verifier could not read, or a file that is not a PDF.
  if (sig && status === 'unreadable' && sig.message) {
    // "malformed: …": our text for a known code, else the server's words.
    const m = /^([a-z_]+):/.exec(String(sig.message));
    reasons.push(m ? reasonText({ code: m[1], message: sig.message }) : String(sig.message));
  }
  if (sig && status === 'not_checked' && typeof sig.reason === 'string') reasons.push(reasonText({ code: sig.reason, message: sig.reason }));

  // "Valid" only when revocation was checked too; else it says so plainly.
  const revocation = revocationStatus(sig);
  const unchecked = status === 'valid' && revocation !== 'checked_good';
  const key = unchecked ? 'sig.valid.revocationNotChecked' : `sig.${status}`;
  const badge = el('span', { class: 'sig-badge', text: t(key) });
  const summary = el('summary', { class: 'sig-summary' }, badge);
  if (signatures.length > 0) summary.append(el('span', { class: 'sig-who', text: signerLine(signatures[0]) }));
  if (signatures.length > 1) summary.append(el('span', { class: 'sig-count', text: t('sig.count', { n: signatures.length }) }));
  const hover = [t(`${key}.help`), ...reasons].filter(Boolean).join('\n');
  summary.title = hover;

  const cls = `sig sig-${status}${unchecked ? ' sig-revocation-not-checked' : ''}`;
  const details = el('details', { class: cls, dataset: { status, revocation } }, summary);
  const body = el('div', { class: 'sig-body' }, el('p', { class: 'sig-help', text: t(`${key}.help`) }));
  if (signatures.length > 0) {
    const list = el('ol', { class: 'sig-list' });
    signatures.forEach((s) => {
      const st = STATUSES.includes(s.status) ? s.status : 'not_checked';
      const stKey = st === 'valid' && revocationStatus(s) !== 'checked_good' ? 'sig.valid.revocationNotChecked' : `sig.${st}`;
      const org = s.organisation || s.organization;
      const when = formatTime(s.signing_time_unix || s.signing_time);
      const item = el(
        'li',
        { class: `sig-item sig-${st}` },
        el('span', { class: 'sig-badge sig-badge-small', text: t(stKey) }),
        el(
          'dl',
          { class: 'sig-fields' },
          el('dt', { text: t('sig.signer') }),
          el('dd', { text: s.signer_name || t('sig.unknownSigner') }),
          org ? [el('dt', { text: t('sig.organisation') }), el('dd', { text: org })] : null,
          when ? [el('dt', { text: t('sig.time') }), el('dd', { text: when })] : null,
          s.revocation ? [el('dt', { text: t('sig.revocation') }), el('dd', { class: 'sig-revocation', text: revocationLine(s) })] : null,
        ),
      );
      const rs = (s.reasons || []).map(reasonText).filter(Boolean);
      if (rs.length > 0) item.append(el('ul', { class: 'sig-reasons' }, rs.map((r) => el('li', { text: r }))));
      list.append(item);
    });
    body.append(list);
  } else if (reasons.length > 0) {
    body.append(el('ul', { class: 'sig-reasons' }, reasons.map((r) => el('li', { text: r }))));
  }
  details.append(body);
  return details;
}

/** The URL of a document version's content. */
export function contentUrl(documentId, version) {
  const v = version ? `?version=${encodeURIComponent(version)}` : '';
  return `/api/documents/${encodeURIComponent(documentId)}/content${v}`;
}

/** The formats the server accepts (it decides from the bytes; this is for the file picker). */
export const ACCEPTED_TYPES = ['pdf', 'docx', 'xlsx', 'pptx', 'doc', 'xls', 'ppt', 'odt', 'ods', 'odp'];

/** The `accept` attribute of a document file input. */
export const ACCEPT_ATTR = ACCEPTED_TYPES.map((x) => `.${x}`).join(',');

/**
 * The label of a version's format, from the type the server verified
 * (`file_type`), never from the file name: "PDF", "DOCX"…, or a neutral
 * "TỆP"/"FILE" for a file uploaded before types were verified.
 */
export function fileTypeOf(version) {
  const ft = version && typeof version.file_type === 'string' ? version.file_type : '';
  return ACCEPTED_TYPES.includes(ft) ? ft : '';
}

/** The icon of a version: its verified format as text and a `doc-icon-<type>` class. */
export function fileIcon(version) {
  const ft = fileTypeOf(version);
  return el('span', {
    class: `doc-icon doc-icon-${ft || 'unknown'}`,
    'aria-hidden': 'true',
    dataset: { type: ft || 'unknown' },
    text: ft ? ft.toUpperCase() : t('doc.fileUnknown'),
  });
}

/**
 * Downloads a version under its file name. The content is fetched with the
 * Bearer token and saved through a download link: it is never opened as a
 * page of this origin (see saveBlob).
 */
export async function downloadDocument(documentId, version, token, filename) {
  const { blob, filename: served } = await apiBlob(contentUrl(documentId, version), { token });
  saveBlob(blob, served || filename || 'document');
}

/**
 * Saves bytes as a file. The blob is re-typed `application/octet-stream`, so
 * even if something navigated to its URL the browser would download it, not
 * render it in this origin; the link has `download` and
 * `rel="noopener noreferrer"`.
 */
export function saveBlob(blob, filename) {
  const safe = new Blob([blob], { type: 'application/octet-stream' });
  const url = URL.createObjectURL(safe);
  const a = el('a', { href: url, download: filename, rel: 'noopener noreferrer', hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/** Whether a document has been withdrawn (or replaced). */
export function isWithdrawn(doc) {
  return !!(doc && doc.withdrawn_at);
}

/**
 * The "withdrawn" note of a document: when, why, and the title of the
 * document that replaced it (looked up in `siblings`, the item's documents).
 */
export function withdrawnNote(doc, siblings) {
  if (!isWithdrawn(doc)) return null;
  const by = doc.replaced_by ? (siblings || []).find((d) => d.id === doc.replaced_by) : null;
  const parts = [t('doc.withdrawnAt', { time: formatTime(doc.withdrawn_at) })];
  if (doc.withdrawn_reason) parts.push(t('doc.withdrawnReason', { reason: doc.withdrawn_reason }));
  if (doc.replaced_by) parts.push(t('doc.replacedBy', { title: by ? by.title : '' }));
  return el(
    'p',
    { class: 'doc-withdrawn-note small', role: 'note' },
    el('span', { class: 'doc-withdrawn-badge', text: t(doc.replaced_by ? 'doc.replaced' : 'doc.withdrawn') }),
    ` ${parts.join(' · ')}`,
  );
}
