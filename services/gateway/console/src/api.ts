// The console's only way to the gateway: the same public API integrators use.

export interface Problem {
  type?: string
  title?: string
  status: number
  detail?: string
  errors?: Record<string, string[] | Record<string, unknown>>
  missing?: MissingCriterion[]
  existing_id?: string
  matches?: { lead_id: string; reason: string; score: number; exact: boolean }[]
  [key: string]: unknown
}

export interface MissingCriterion {
  stage?: string
  stage_id?: string
  type: 'field' | 'activity' | string
  field?: string
  kind?: string
  tag?: string
  min_count?: number
  found?: number
  message?: string
}

/** An answer that is not 2xx (`status` 0: the gateway could not be reached). */
export class ApiError extends Error {
  readonly status: number
  readonly problem: Problem
  readonly retryAfter: number | null

  constructor(problem: Problem, retryAfter: number | null = null) {
    super(problem.detail || problem.title || `HTTP ${problem.status}`)
    this.status = problem.status
    this.problem = problem
    this.retryAfter = retryAfter
  }

  /** Field name -> messages, for a 422 (nested messages are flattened to `a.b`). */
  get fieldErrors(): Record<string, string[]> {
    const flat: Record<string, string[]> = {}
    const walk = (prefix: string, value: unknown) => {
      if (Array.isArray(value)) {
        flat[prefix] = value.map(String)
      } else if (value && typeof value === 'object') {
        for (const [key, inner] of Object.entries(value)) walk(prefix ? `${prefix}.${key}` : key, inner)
      } else if (value !== undefined) {
        flat[prefix] = [String(value)]
      }
    }
    walk('', this.problem.errors ?? {})
    return flat
  }
}

const TOKEN_KEY = 'crm.console.token'
type Listener = () => void
const unauthorisedListeners: Listener[] = []

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY)
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token)
  else sessionStorage.removeItem(TOKEN_KEY)
}

/** Called when the gateway says the token is no longer valid (expired, revoked). */
export function onUnauthorised(listener: Listener): void {
  unauthorisedListeners.push(listener)
}

export type Query = Record<string, string | number | boolean | null | undefined>

export interface RequestOptions {
  query?: Query
  body?: unknown
  form?: FormData
  headers?: Record<string, string>
}

export function buildUrl(path: string, query?: Query): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value !== undefined && value !== null && value !== '') params.append(key, String(value))
  }
  const text = params.toString()
  return text ? `${path}?${text}` : path
}

export async function request<T = unknown>(method: string, path: string,
                                           options: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json', ...options.headers }
  const token = getToken()
  if (token) headers.Authorization = `Bearer ${token}`
  let body: BodyInit | undefined
  if (options.form) {
    body = options.form
  } else if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json'
    body = JSON.stringify(options.body)
  }
  let response: Response
  try {
    response = await fetch(buildUrl(path, options.query), { method, headers, body })
  } catch {
    throw new ApiError({ status: 0, title: 'network' })
  }
  const text = await response.text()
  let data: unknown = null
  if (text) {
    try {
      data = JSON.parse(text)
    } catch {
      data = { detail: text }
    }
  }
  if (!response.ok) {
    const retry = response.headers.get('Retry-After')
    const problem = { ...(data as object), status: response.status } as Problem
    if (response.status === 401 && token) unauthorisedListeners.forEach((listener) => listener())
    throw new ApiError(problem, retry !== null && retry !== '' ? Number(retry) : null)
  }
  return data as T
}

export const api = {
  get: <T = unknown>(path: string, query?: Query) => request<T>('GET', path, { query }),
  post: <T = unknown>(path: string, body?: unknown, query?: Query) =>
    request<T>('POST', path, { body: body ?? {}, query }),
  put: <T = unknown>(path: string, body: unknown) => request<T>('PUT', path, { body }),
  patch: <T = unknown>(path: string, body: unknown) => request<T>('PATCH', path, { body }),
  delete: <T = unknown>(path: string) => request<T>('DELETE', path),
  upload: <T = unknown>(path: string, form: FormData) => request<T>('POST', path, { form }),
}

export interface Page<T> {
  items: T[]
  next_cursor?: string | null
}
