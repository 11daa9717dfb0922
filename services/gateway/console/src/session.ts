import { reactive } from 'vue'
import { api, ApiError, getToken, setToken, type Page } from './api'

export interface Me {
  id: string
  username: string
  display_name: string
  role: 'admin' | 'manager' | 'sales_rep' | 'service_agent' | string
  team_id: string | null
  scope?: { owner_ids?: string[] | null; include_pool?: boolean }
}

export interface UserSummary {
  id: string
  username: string
  display_name: string
  role?: string
  team_id: string | null
}

export const session = reactive({
  me: null as Me | null,
  // Users the caller may see (names for owner ids); reps see only themselves.
  users: {} as Record<string, UserSummary>,
})

export async function signIn(username: string, password: string): Promise<Me> {
  const answer = await api.post<{ token: string }>('/auth/tokens', { username, password })
  setToken(answer.token)
  return loadMe()
}

export async function loadMe(): Promise<Me> {
  session.me = await api.get<Me>('/me')
  session.users[session.me.id] = session.me
  await loadUsers()
  return session.me
}

async function loadUsers(): Promise<void> {
  try {
    const page = await api.get<Page<UserSummary>>('/users', { limit: 200 })
    for (const user of page.items) session.users[user.id] = user
  } catch (error) {
    // A rep may not list users: owner names then fall back to "me" / the id.
    if (!(error instanceof ApiError) || error.status !== 403) throw error
  }
}

export function signOut(): void {
  setToken(null)
  session.me = null
  session.users = {}
}

export function isSignedIn(): boolean {
  return getToken() !== null
}

export function isManager(): boolean {
  return session.me?.role === 'manager' || session.me?.role === 'admin'
}

export function isAdmin(): boolean {
  return session.me?.role === 'admin'
}

export function userName(id: string | null | undefined): string {
  if (!id) return '—'
  const user = session.users[id]
  return user ? user.display_name || user.username : id.slice(0, 8)
}

/** Who works tickets: service agents, and managers and admins who oversee them. */
export function isAgent(): boolean {
  return ['service_agent', 'manager', 'admin'].includes(session.me?.role ?? '')
}
