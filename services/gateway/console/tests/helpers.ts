import { vi } from 'vitest'
import ElementPlus from 'element-plus'
import { makeI18n, type Locale } from '../src/i18n'

export interface Call { method: string; url: string; body: unknown; headers: Record<string, string> }
type Answer = { status?: number; body?: unknown; headers?: Record<string, string> }
type Route = (call: Call) => Answer | undefined

/** Stubs `fetch`: each call goes to `route`, which answers (or leaves it to a 404). */
export function fakeGateway(route: Route): Call[] {
  const calls: Call[] = []
  vi.stubGlobal('fetch', vi.fn(async (url: string, init: RequestInit = {}) => {
    const call: Call = {
      method: init.method ?? 'GET', url: String(url),
      body: typeof init.body === 'string' ? JSON.parse(init.body) : init.body,
      headers: (init.headers ?? {}) as Record<string, string>,
    }
    calls.push(call)
    const answer = route(call) ?? { status: 404, body: { status: 404, title: 'Not Found' } }
    const status = answer.status ?? 200
    const type = status >= 400 ? 'application/problem+json' : 'application/json'
    return new Response(answer.body === undefined ? null : JSON.stringify(answer.body), // null: a 204 has no body
      { status, headers: { 'Content-Type': type, ...answer.headers } })
  }))
  return calls
}

export function plugins(locale: Locale = 'zh-CN') {
  return [ElementPlus, makeI18n(locale)]
}

/** Let pending promises and Vue's re-render run. */
export async function settle(times = 5): Promise<void> {
  for (let i = 0; i < times; i++) await new Promise((resolve) => setTimeout(resolve, 0))
}

/** Types into the input or textarea `selector` finds in `root` (dialogs live in document.body). */
export function typeInto(selector: string, value: string, root: ParentNode = document.body): void {
  const element = root.querySelector(selector) as HTMLInputElement | HTMLTextAreaElement | null
  if (!element) throw new Error(`nothing matches ${selector}`)
  element.value = value
  element.dispatchEvent(new Event('input'))
}

export function valueOf(selector: string, root: ParentNode = document.body): string {
  return (root.querySelector(selector) as HTMLInputElement).value
}

/** The text of the form item that holds `selector` (its label, input and error). */
export function formItemText(selector: string, root: ParentNode = document.body): string {
  return root.querySelector(selector)?.closest('.el-form-item')?.textContent ?? ''
}

export function click(selector: string, root: ParentNode = document.body): void {
  const element = root.querySelector(selector) as HTMLElement | null
  if (!element) throw new Error(`nothing matches ${selector}`)
  element.click()
}

/** Submits the form `selector` finds. */
export function submitForm(selector: string, root: ParentNode = document.body): void {
  const form = root.querySelector(selector) as HTMLFormElement | null
  if (!form) throw new Error(`nothing matches ${selector}`)
  form.dispatchEvent(new Event('submit', { cancelable: true }))
}

/** Element Plus shows form item errors after a short debounce. */
export const errorsShown = () => new Promise((resolve) => setTimeout(resolve, 250))
