import { ref } from 'vue'
import { api, type Page } from './api'

export interface Notification {
  id: string
  title: string
  body: string | null
  record_type: string | null
  record_id: string | null
  created_at: string
  read_at: string | null
}

export const unread = ref(0)
export const POLL_MS = 10_000
let timer: ReturnType<typeof setInterval> | null = null

export async function refreshInbox(): Promise<Notification[]> {
  const page = await api.get<Page<Notification>>('/notifications', { limit: 100 })
  unread.value = page.items.filter((item) => !item.read_at).length
  return page.items
}

export function startInboxPolling(): void {
  if (timer) return
  refreshInbox().catch(() => undefined)
  // Polling: simple, and enough for a badge (a push channel would need a new gateway route).
  timer = setInterval(() => refreshInbox().catch(() => undefined), POLL_MS)
}

export function stopInboxPolling(): void {
  if (timer) clearInterval(timer)
  timer = null
}
