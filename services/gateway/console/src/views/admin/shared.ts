// What the admin tabs share: the row type, every page of a list, and an error guard.
import { ref } from 'vue'
import { useI18n } from 'vue-i18n'
import { api, type Page, type Query } from '../../api'
import { describeError, fieldErrors } from '../../errors'

export type Row = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any

/** Every item of a cursor-paged list (users, teams: a few hundred at most). */
export async function allPages<T = Row>(path: string, query: Query = {}, maxPages = 50): Promise<T[]> {
  const items: T[] = []
  let cursor: string | null | undefined
  for (let page = 0; page < maxPages; page++) {
    const answer = await api.get<Page<T>>(path, { ...query, limit: 200, cursor })
    items.push(...answer.items)
    cursor = answer.next_cursor
    if (!cursor) break
  }
  return items
}

/** `error` for the tab's alert; `run` clears it on success and sets it on failure. */
export function useGuard() {
  const { t } = useI18n()
  const error = ref('')
  async function run(work: () => Promise<void>): Promise<boolean> {
    try {
      await work()
      error.value = ''
      return true
    } catch (failure) {
      error.value = describeError(failure, t)
      return false
    }
  }
  return { error, run, t }
}

/** A form's submit: field errors at the fields, one sentence above; what was typed stays. */
export function useSubmit() {
  const { t } = useI18n()
  const errors = ref<Record<string, string>>({})
  const message = ref('')
  const busy = ref(false)
  async function submit(work: () => Promise<void>): Promise<boolean> {
    busy.value = true
    errors.value = {}
    message.value = ''
    try {
      await work()
      return true
    } catch (failure) {
      errors.value = fieldErrors(failure, t)
      message.value = describeError(failure, t)
      return false
    } finally {
      busy.value = false
    }
  }
  /** Errors under `prefix.` (e.g. every `actions.0.*`), one line each with the rest of the path. */
  function under(prefix: string): string {
    return Object.entries(errors.value)
      .filter(([key]) => key === prefix || key.startsWith(`${prefix}.`))
      .map(([key, text]) => (key === prefix ? text : `${key.slice(prefix.length + 1)}: ${text}`))
      .join('; ')
  }
  return { errors, message, busy, submit, under, t }
}

/** JSON typed by the user: the object, or null with the field's error set. */
export function parseJsonObject(text: string, field: string, errors: Record<string, string>,
                                invalid: string): Row | null {
  if (!text.trim()) return {}
  try {
    const value = JSON.parse(text)
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Row
  } catch { /* below */ }
  errors[field] = invalid
  return null
}

// ---- dry run (RuleDryRun.vue)

/** Where a dry run posts, the body without its event, and the trigger's event types
 * (null from a form whose own JSON boxes do not parse). */
export interface DryTarget { path: string; body: Row; events: string[] }

/** Glob patterns (`leads.*`, `*`) as the rules service matches trigger events (fnmatch). */
export function eventMatches(patterns: string[], name: string): boolean {
  return patterns.some((pattern) => {
    const source = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
    return new RegExp(`^${source}$`).test(name)
  })
}

/** JSON with sorted keys: a form's definition compared with the saved rule's. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value && typeof value === 'object') {
    return `{${Object.keys(value).sort().map((key) => `${JSON.stringify(key)}:${canonical((value as Row)[key])}`).join(',')}}`
  }
  return JSON.stringify(value ?? null)
}
