// The landing page: only the language switch.
import { applyI18n, setupLangSwitch } from './i18n.js';

setupLangSwitch(document);
applyI18n(document);
