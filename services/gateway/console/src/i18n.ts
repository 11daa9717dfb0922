import { createI18n } from 'vue-i18n'
import zhCN from './locales/zh-CN'
import en from './locales/en'

export const LOCALE_KEY = 'crm.console.locale'
export type Locale = 'zh-CN' | 'en'

function initialLocale(): Locale {
  const saved = typeof localStorage !== 'undefined' ? localStorage.getItem(LOCALE_KEY) : null
  return saved === 'en' || saved === 'zh-CN' ? saved : 'zh-CN'
}

export function makeI18n(locale: Locale = initialLocale()) {
  return createI18n({
    legacy: false,
    locale,
    fallbackLocale: 'zh-CN',
    messages: { 'zh-CN': zhCN, en },
  })
}

export const i18n = makeI18n()
